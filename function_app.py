"""The Function App: registers the blueprints of functions/, nothing else."""
import azure.functions as func

from functions import close, graph_webhook, reconcile, sync, tenants

app = func.FunctionApp()
for blueprint in (close.bp, graph_webhook.bp, reconcile.bp, sync.bp, tenants.bp):
    app.register_functions(blueprint)
