"""The floor of bench/webhook.py: one anonymous HTTP function that reads the body and answers
202 at once, served by the same development host as Prorata's webhook."""
import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="graph/notifications", methods=["POST"])
def accept(req: func.HttpRequest) -> func.HttpResponse:
    req.get_body()
    return func.HttpResponse(status_code=202)
