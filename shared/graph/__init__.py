"""Microsoft Graph adapter. Importing this package is cheap; msgraph is imported only when a
client is first built, so the webhook path never pays for it."""
