//! The environment variables `pbiops --help` lists, with their defaults.

/// The environment variables, for `--help`.
pub const ENV_HELP: &str = "\
Environment:
  PBIOPS_TASK                     the task as JSON (instead of arguments, --task-file or stdin)
  PBIOPS_TENANT_ID                the default profile's tenant (GUID or domain)
  PBIOPS_CLIENT_ID                the default profile's application (client) id
  PBIOPS_CLIENT_SECRET            its client secret (the secret's value, not its id), or:
  PBIOPS_CERTIFICATE_PATH         a PEM file with its certificate and private key, or:
  PBIOPS_CERTIFICATE              that PEM (or its base64) itself, or:
  PBIOPS_FEDERATED_TOKEN_FILE     a federated token file (AZURE_FEDERATED_TOKEN_FILE on AKS), or:
  PBIOPS_MANAGED_IDENTITY         a managed identity: `system`, or a user-assigned client id
  PBIOPS_AUTH                     the method, if explicit: secret, certificate, federated,
                                  managed-identity
  PBIOPS_PROFILE_<NAME>_<FIELD>   profile <name>, same fields: PBIOPS_PROFILE_<NAME>_TENANT_ID, ...
  PBIOPS_CLOUD                    public, usgov (GCC), usgovhigh (GCC High), dod or china: the
                                  Entra ID, Power BI and Fabric hosts and token scopes [public];
                                  per profile: PBIOPS_PROFILE_<NAME>_CLOUD
  PBIOPS_AUTHORITY_URL            Entra ID host [the cloud's, https://login.microsoftonline.com]
  PBIOPS_POWERBI_URL              Power BI REST base [the cloud's, https://api.powerbi.com/v1.0/myorg]
  PBIOPS_FABRIC_URL               Fabric REST base [the cloud's, https://api.fabric.microsoft.com/v1]
  PBIOPS_IMDS_URL                 managed identity endpoint
                                  [http://169.254.169.254/metadata/identity/oauth2/token]
  IDENTITY_ENDPOINT               App Service managed identity endpoint (set by the platform)
  IDENTITY_HEADER                 App Service managed identity secret (set by the platform)
  PBIOPS_ODBC                     the store's ODBC connection string; `none` disables the store
                                  [SQLite in PBIOPS_DATA_DIR]
  PBIOPS_DATA_DIR                 the default SQLite store's directory [~/.local/share/pbiops]
  PBIOPS_TOKEN_KEY                32 bytes, base64: encrypts stored tokens (AES-256-GCM)
  PBIOPS_LEGACY_TOKEN_TABLE       also append Power BI tokens to this table (log.BearerTokens)
  PBIOPS_LEGACY_TOKEN_MAX_LENGTH  that table's bearerToken column size [1300]
  PBIOPS_SLOT_LEASE               how long a capacity slot (maxParallelPerCapacity) outlives a
                                  worker that stopped renewing it; renewed every quarter of it
                                  [PT2M, between PT10S and PT1H]
  KESTRA_EXECUTION_ID             recorded with each operation, as are KESTRA_TASKRUN_ID,
                                  KESTRA_FLOW_ID and KESTRA_NAMESPACE
  PBIOPS_LOG_FORMAT               kestra, text or json [kestra unless stdout is a terminal]
  PBIOPS_LOG_LEVEL                error, warn, info, debug or trace [info]
  PBIOPS_HTTP_TIMEOUT             per-request timeout [PT60S]
  PBIOPS_HTTP_RETRIES             attempts per call on 429, 5xx and network errors [6]
  PBIOPS_HTTP_RETRY_BUDGET        total time one call may spend retrying [PT10M]
  PBIOPS_HTTP_MAX_RESPONSE_MB     largest answer read, in MiB [32]
  PBIOPS_CA_FILE                  PEM file of CA certificates trusted in addition to the
                                  system's (a TLS-inspecting proxy's root)
  HTTPS_PROXY, HTTP_PROXY         proxy for https:// and http:// URLs (also lower case); ALL_PROXY
                                  for both; http://user:password@host:port
  NO_PROXY                        hosts, domains (.corp.example), addresses or CIDRs reached
                                  directly; loopback, link-local (169.254.169.254) and managed
                                  identity endpoints are always reached directly
Plain http:// endpoints are refused unless the host is loopback (the emulator) or a managed
identity endpoint. Empty values count as unset.";
