// Prorata on Azure: one resource group holding a Flex Consumption Function App (Python 3.11),
// its user-assigned managed identity, one storage account (no shared keys), and Log Analytics +
// Application Insights. Deploy with `azd up` (azure.yaml at the repository root) or with
// `az deployment group create` (docs/deploy.md).
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('azd environment name: seeds the resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Azure region of every resource; it must offer Flex Consumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string = resourceGroup().location

@description('Largest number of Function App instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each Function App instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// HTTP functions (the Graph webhook and the API) scale together as one group on Flex Consumption.
// Graph expects a notification answered within 3 s and a validation handshake within 10 s, so
// neither may wait for a cold start, and Python's default HTTP concurrency there is 1 per
// instance (functions-concurrency, "HTTP trigger concurrency"): set both explicitly.
@description('Concurrent HTTP requests per instance (the webhook only stores each notification and answers 202).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Always-ready instances for the HTTP functions: 1 keeps the webhook warm (billed even when idle; see docs/deploy.md); 0 lets it scale to zero.')
@minValue(0)
@maxValue(20)
param httpAlwaysReadyInstances int = 1

@description('Replication of the storage account that holds the ledger and the invoices (the books of record).')
@allowed([
  'Standard_ZRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_LRS'
])
param storageSku string = 'Standard_GZRS'

// ---------------------------------------------------------------------------------------------
// What the MSP provides
// ---------------------------------------------------------------------------------------------

@description('MSP_TENANT_ID: the MSP\'s own Entra tenant id (app registration and invoicing mailbox). Empty: the tenant of this deployment.')
param mspTenantId string = ''

@minLength(1)
@description('GRAPH_APP_CLIENT_ID: application (client) id of the MSP\'s multi-tenant app registration.')
param graphAppClientId string

@minLength(1)
@description('INVOICE_MAILBOX: the MSP mailbox invoices are sent from (UPN or object id).')
param invoiceMailbox string

@description('INVOICE_CC: comma-separated addresses copied on every invoice email.')
param invoiceCc string = ''

@description('INVOICE_BCC: comma-separated addresses blind-copied on every invoice email.')
param invoiceBcc string = ''

@description('BRAND_NAME: the MSP\'s name on invoices.')
param brandName string = 'Your MSP'

@description('BRAND_ADDRESS: postal address on invoices, lines separated by |.')
param brandAddress string = ''

@description('BRAND_LOGO_URL: logo on invoices (https or data: URL).')
param brandLogoUrl string = ''

@description('BRAND_PRIMARY_COLOR: main colour of invoices.')
param brandPrimaryColor string = '#1F4E79'

@description('BRAND_ACCENT_COLOR: accent colour of invoices (table stripes).')
param brandAccentColor string = '#E8EEF4'

@description('INVOICE_NUMBER_PREFIX: prefix of invoice numbers.')
param invoiceNumberPrefix string = 'INV-'

@description('INVOICE_NUMBER_FORMAT: invoice number format ({prefix}, {year}, {month}, {seq}).')
param invoiceNumberFormat string = '{prefix}{year}-{seq:05d}'

@description('INVOICE_PAYMENT_TERMS_DAYS: days from the invoice date to the due date.')
param invoicePaymentTermsDays string = '30'

// ---------------------------------------------------------------------------------------------
// Schedules (NCRONTAB, six fields, UTC) and tuning; defaults are those of shared/settings.py
// ---------------------------------------------------------------------------------------------

@description('MONTH_END_SCHEDULE: NCRONTAB schedule of the month-end close (UTC).')
param monthEndSchedule string = '0 0 6 1 * *'

@description('MONTH_END_CATCHUP_SCHEDULE: NCRONTAB schedule of the month-end catch-up (clients whose month ends after the main run).')
param monthEndCatchupSchedule string = '0 15 * 1,2 * *'

@description('SUBSCRIPTION_RENEW_SCHEDULE: NCRONTAB schedule of the Graph subscription renewal.')
param subscriptionRenewSchedule string = '0 0 */6 * * *'

@description('DAILY_SYNC_SCHEDULE: NCRONTAB schedule of the daily delta sync of every tenant.')
param dailySyncSchedule string = '0 30 2 * * *'

@description('SUBSCRIPTION_LIFETIME_MINUTES: lifetime asked for each Graph subscription (at most 41760).')
param subscriptionLifetimeMinutes string = '4320'

@description('SUBSCRIPTION_RENEW_BEFORE_MINUTES: renew a subscription when it expires within this many minutes.')
param subscriptionRenewBeforeMinutes string = '1440'

@description('WEBHOOK_MAX_BODY_BYTES: largest notification body accepted (413 above).')
param webhookMaxBodyBytes string = '1048576'

@description('SYNC_RECHECK_SECONDS: delays before re-checking notified users a delta did not show yet.')
param syncRecheckSeconds string = '30,120,600'

@description('GRAPH_BASE_URL: Microsoft Graph endpoint.')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var effectiveMspTenantId = empty(mspTenantId) ? tenant().tenantId : mspTenantId

var invoiceContainerName = 'invoices'
var deploymentContainerName = 'app-package-${resourceToken}'
var queueNames = [
  'tenant-sync'
  'tenant-sync-poison'
  'tenant-close'
  'tenant-close-poison'
]
var tableNames = [
  'tenants'
  'ledger'
  'subscriptions'
  'invoices'
  'runs'
  'counters'
]

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-prorata-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-prorata-${resourceToken}'
    applicationInsightsName: 'appi-prorata-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    containerNames: [
      invoiceContainerName
      deploymentContainerName
    ]
    queueNames: queueNames
    tableNames: tableNames
    skuName: storageSku
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    principalId: identity.outputs.principalId
  }
}

// Prorata's app settings: every name of shared/settings.py SETTINGS except AzureWebJobsStorage
// (replaced by the identity-based AzureWebJobsStorage__* set in modules/functionapp.bicep, with
// PUBLIC_BASE_URL and the Application Insights settings) and the optional secret-ish
// GRAPH_CLIENT_SECRET, GRAPH_CERTIFICATE_PATH and GRAPH_STATIC_TOKEN (docs/deploy.md).
var appSettings = {
  GRAPH_BASE_URL: graphBaseUrl
  GRAPH_AUTH: 'federated'
  GRAPH_APP_CLIENT_ID: graphAppClientId
  MSP_TENANT_ID: effectiveMspTenantId
  MANAGED_IDENTITY_CLIENT_ID: identity.outputs.clientId
  MONTH_END_SCHEDULE: monthEndSchedule
  MONTH_END_CATCHUP_SCHEDULE: monthEndCatchupSchedule
  SUBSCRIPTION_RENEW_SCHEDULE: subscriptionRenewSchedule
  DAILY_SYNC_SCHEDULE: dailySyncSchedule
  SUBSCRIPTION_LIFETIME_MINUTES: subscriptionLifetimeMinutes
  SUBSCRIPTION_RENEW_BEFORE_MINUTES: subscriptionRenewBeforeMinutes
  INVOICE_MAILBOX: invoiceMailbox
  INVOICE_CC: invoiceCc
  INVOICE_BCC: invoiceBcc
  INVOICE_NUMBER_PREFIX: invoiceNumberPrefix
  INVOICE_NUMBER_FORMAT: invoiceNumberFormat
  INVOICE_PAYMENT_TERMS_DAYS: invoicePaymentTermsDays
  INVOICE_CONTAINER: invoiceContainerName
  BRAND_NAME: brandName
  BRAND_ADDRESS: brandAddress
  BRAND_LOGO_URL: brandLogoUrl
  BRAND_PRIMARY_COLOR: brandPrimaryColor
  BRAND_ACCENT_COLOR: brandAccentColor
  WEBHOOK_MAX_BODY_BYTES: webhookMaxBodyBytes
  SYNC_RECHECK_SECONDS: syncRecheckSeconds
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: 'func-prorata-${resourceToken}'
    planName: 'plan-prorata-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appSettings: appSettings
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    httpAlwaysReadyInstances: httpAlwaysReadyInstances
  }
  // The host starts as soon as the app exists: give its identity its roles first.
  dependsOn: [
    roles
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd writes them to .azure/<env>/.env)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_DEFAULT_HOST_NAME string = functionApp.outputs.defaultHostName
output PUBLIC_BASE_URL string = 'https://${functionApp.outputs.defaultHostName}'
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
// The federated credential to add to the multi-tenant app registration (docs/deploy.md).
output FEDERATED_CREDENTIAL_ISSUER string = '${environment().authentication.loginEndpoint}${identity.outputs.tenantId}/v2.0'
output FEDERATED_CREDENTIAL_SUBJECT string = identity.outputs.principalId
output FEDERATED_CREDENTIAL_AUDIENCE string = 'api://AzureADTokenExchange'
