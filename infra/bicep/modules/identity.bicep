// The user-assigned managed identity of the Function App. It reaches storage and Application
// Insights through Azure RBAC (modules/roles.bicep), and it is the federated credential of the
// MSP's multi-tenant app registration, so that Prorata reads client tenants without a secret.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region of the identity.')
param location string

@description('Tags of the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
output tenantId string = identity.properties.tenantId
