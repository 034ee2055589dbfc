"""The Function App: registers the blueprints of functions/, nothing else."""
import azure.functions as func

from functions import graph_webhook, reconcile, sync, tenants

app = func.FunctionApp()
for blueprint in (graph_webhook.bp, reconcile.bp, sync.bp, tenants.bp):
    app.register_functions(blueprint)
