// Flex Consumption (FC1) plan and the Linux Function App on Python 3.11.
// The app runs as its user-assigned identity: the deployment package container, the host's
// storage (AzureWebJobsStorage__*) and Application Insights are all reached with it, no key.

@description('Name of the Function App (globally unique: it is the host name).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region of the plan and the app.')
param location string

@description('Tags of the plan; the app gets them plus azd-service-name.')
param tags object

@description('Service name in azure.yaml, written to the azd-service-name tag.')
param serviceName string = 'api'

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Name of the storage account (host storage and deployment package).')
param storageAccountName string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Prorata\'s own app settings (name -> value); the host and telemetry settings are added here.')
param appSettings object

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Largest number of instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Concurrent HTTP requests per instance (Python\'s default on Flex Consumption is 1).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

// Python worker threads per instance (see PYTHON_THREADPOOL_THREAD_COUNT below).
var pythonThreads = min(32, max(24, httpPerInstanceConcurrency))

@description('Always-ready instances of the HTTP function group (0: scale to zero).')
@minValue(0)
param httpAlwaysReadyInstances int = 1

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists only in some regions; the app keeps no state of its own (storage is zone- and geo-redundant) and new instances start on demand
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: Graph presents no client certificate when it delivers notifications
  // checkov:skip=CKV_AZURE_212: serverless plan: instances come on demand, and httpAlwaysReadyInstances keeps the HTTP group warm
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no App Service health check; the platform restarts unhealthy hosts
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        // All HTTP functions form the group `http`; its always-ready instances answer Graph's
        // handshake and notifications without a cold start.
        alwaysReady: [
          {
            name: 'http'
            instanceCount: httpAlwaysReadyInstances
          }
        ]
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
    }
  }

  // All app settings in one place. Flex Consumption takes the runtime from functionAppConfig:
  // FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION must not be set.
  resource settings 'config' = {
    // checkov:skip=CKV_AZURE_222: Microsoft Graph must reach the webhook from the internet; the API routes need a function key, notifications are checked by clientState
    // checkov:skip=CKV_AZURE_66: App Service request tracing does not exist on Flex Consumption; requests and failures go to Application Insights
    // checkov:skip=CKV_AZURE_63: App Service HTTP logs do not exist on Flex Consumption; requests go to Application Insights
    // checkov:skip=CKV_AZURE_65: detailed error pages are an App Service web-site feature; functions log errors to Application Insights
    // checkov:skip=CKV_AZURE_80: not a .NET app (Python 3.11)
    // checkov:skip=CKV_AZURE_13: App Service Authentication (EasyAuth) is not supported on Flex Consumption and Graph could not sign in to it; function keys guard the API
    // checkov:skip=CKV_AZURE_88: Flex Consumption runs from a blob deployment package and has no Azure Files content share
    name: 'appsettings'
    properties: union(appSettings, {
      // Host storage through the identity: no AzureWebJobsStorage connection string.
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
      AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
      AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      // Telemetry with Entra ID (the component has local auth disabled).
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      // Base of the Graph notification URLs.
      PUBLIC_BASE_URL: 'https://${functionApp.properties.defaultHostName}'
      // Sync functions run on a Python worker thread pool of min(32, cores + 4) threads unless this
      // says otherwise (python-scale-performance-reference): a thread for each queue message that
      // host.json lets an instance run at once (24) and each HTTP request, up to 32.
      PYTHON_THREADPOOL_THREAD_COUNT: '${pythonThreads}'
    })
  }
}

// No FTP basic-auth publishing.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output planName string = plan.name
