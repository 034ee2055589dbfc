// Role assignments of the Function App's user-assigned identity. Role definition ids are the
// built-in ones (the same GUID in every tenant):
//   Storage Blob Data Owner         b7e6dc6d-f1e8-4753-8033-0f276bb0955b
//   Storage Queue Data Contributor  974c5e8b-45b9-4653-ba55-5f855dd0fb88
//   Storage Table Data Contributor  0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3
//   Monitoring Metrics Publisher    3913510d-42f4-4e42-8a64-420c390055eb
//
// Why Blob Data Owner and not Blob Data Contributor: the same identity is the host's
// AzureWebJobsStorage connection and the Flex Consumption deployment identity. The Functions
// host and the Flex deployment (package container) are documented to need Storage Blob Data
// Owner; Contributor would be enough for the invoices container alone, but one assignment on the
// account covers the three uses, and a second, narrower one would add nothing.

@description('Name of the storage account the identity gets data roles on.')
param storageAccountName string

@description('Name of the Application Insights component the identity publishes telemetry to.')
param applicationInsightsName string

@description('Object (principal) id of the user-assigned managed identity.')
param principalId string

var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var storageRoles = [
  {
    roleId: roleIds.storageBlobDataOwner
    description: 'Prorata: Storage Blob Data Owner for the Functions host (AzureWebJobsStorage), the Flex Consumption deployment package and the invoices container'
  }
  {
    roleId: roleIds.storageQueueDataContributor
    description: 'Prorata: Storage Queue Data Contributor for tenant-sync and tenant-close (queue triggers, poison queues)'
  }
  {
    roleId: roleIds.storageTableDataContributor
    description: 'Prorata: Storage Table Data Contributor for tenants, ledger, subscriptions, invoices, runs and counters'
  }
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in storageRoles: {
    name: guid(storage.id, principalId, role.roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
      description: role.description
    }
  }
]

resource metricsPublisherAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, roleIds.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Prorata: Monitoring Metrics Publisher so the Function App sends telemetry with Entra ID (local auth is off)'
  }
}
