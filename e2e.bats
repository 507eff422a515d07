#!/usr/bin/env bats
# End-to-end tests of annotated-policy.wasm through a Kubewarden runner:
#   make e2e-tests                 (bundled kwrun)
#   make e2e-tests KWCTL=kwctl     (the real kwctl; only kwctl's own flags are used)
# Each scenario lives in test_data/<name>/ (request.json, session.yml, settings.json,
# description); `make run` shows them all. Large fixtures are generated per test.

load test_data/helpers

CLIENT=11111111-1111-1111-1111-111111111111
TENANT=22222222-2222-2222-2222-222222222222
ARN=arn:aws:iam::111122223333:role/reports
GCP_AUD=//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/cluster/providers/kube
GSA=reports@my-project.iam.gserviceaccount.com
RESOURCES='{"requests":{"cpu":"50m","memory":"128Mi"},"limits":{"memory":"512Mi"}}'
SECURITY='{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}'
NON_ENFORCING=" || echo 'cwii: verification check failed (non-enforcing)' >&2"
AZ_CHECK='az login --service-principal -u "$AZURE_CLIENT_ID" -t "$AZURE_TENANT_ID" --federated-token "$(cat "$AZURE_FEDERATED_TOKEN_FILE")" >/dev/null && az account show >/dev/null'
AWS_CHECK='aws sts get-caller-identity'
GCP_CHECK='gcloud auth application-default print-access-token >/dev/null'
WRITER_SECURITY='{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true}'
AWS_NO_REGION="cwii: aws has no region: set cwii.dev/aws-region on the pod, workload, ServiceAccount or namespace, or in settings.defaults; the AWS SDKs for JavaScript v3, Go v2 and Java v2 need AWS_REGION to build an STS client"

setup_file() {
  [ -x "$KWCTL" ] || command -v "$KWCTL" >/dev/null || {
    echo "runner $KWCTL not found: run make kwrun, or set KWCTL" >&2
    return 1
  }
  [ -f "$POLICY" ] || { echo "$POLICY missing: run make annotated-policy.wasm" >&2; return 1; }
}

# The credentials.json the policy must write (SPEC §4), as compact JSON.
expected_credentials() { # AUDIENCE TOKEN_FILE [GSA]
  jq -cn --arg aud "$1" --arg file "$2" --arg gsa "${3:-}" '
    {type: "external_account", audience: $aud,
     subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
     token_url: "https://sts.googleapis.com/v1/token",
     token_info_url: "https://sts.googleapis.com/v1/introspect",
     credential_source: {file: $file}}
    + (if $gsa == "" then {} else {service_account_impersonation_url:
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/\($gsa):generateAccessToken"} end)'
}

# A projected token volume.
token_volume() { # PROVIDER AUDIENCE SECONDS
  jq -cn --arg p "$1" --arg aud "$2" --argjson s "$3" \
    '{name: "cwii-\($p)-token", projected: {sources: [{serviceAccountToken: {path: "token", audience: $aud, expirationSeconds: $s}}]}}'
}

# ============================================================ Azure and the foundation

@test "az from pod annotations: exact volume, mount, env, marker and audit annotation" {
  scenario az-pod-annotations
  mutated
  pod --argjson v "$(token_volume az api://AzureADTokenExchange 3600)" '.spec.volumes == [$v]'
  pod --argjson m "$AZ_MOUNT" '.spec.containers[0].volumeMounts == [$m]'
  pod --argjson e "$AZ_ENV" '.spec.containers[0].env == $e'
  pod '.metadata.annotations["cwii.dev/injected"] == "az"'
  resp '.auditAnnotations == {"cwii-az-sources": "client-id=pod inject=pod tenant-id=pod audience=settings token-expiration=settings"}'
  warnings_are
}

@test "az from the ServiceAccount of a Deployment's pod: ReplicaSet then Deployment, SA, namespace" {
  scenario az-serviceaccount-deployment
  mutated
  pod --argjson e "$AZ_ENV" '.spec.containers[0].env == $e'
  pod --argjson v "$(token_volume az api://AzureADTokenExchange 3600)" '.spec.volumes == [$v]'
  resp '.auditAnnotations["cwii-az-sources"] == "client-id=serviceaccount inject=serviceaccount tenant-id=serviceaccount audience=settings token-expiration=settings"'
  warnings_are
}

@test "workload level: Deployment beats ReplicaSet per key, each key resolved on its own" {
  scenario az-workload-top-wins
  mutated
  [ "$(env_of app AZURE_CLIENT_ID)" = deploy-client ]
  [ "$(env_of app AZURE_AUTHORITY_HOST)" = https://login.replicaset.example/ ]
  [ "$(env_of app AZURE_TENANT_ID)" = sa-tenant ]
  pod --argjson v "$(token_volume az api://from-deployment 5400)" '.spec.volumes == [$v]'
  resp '.auditAnnotations["cwii-az-sources"] == "audience=workload authority-host=workload client-id=workload inject=workload tenant-id=serviceaccount token-expiration=namespace"'
}

@test "Job under a CronJob: both looked up, the CronJob wins per key" {
  scenario az-job-cronjob
  mutated
  [ "$(env_of app AZURE_CLIENT_ID)" = cron-client ]
  [ "$(env_of app AZURE_TENANT_ID)" = "$TENANT" ]
  resp '.auditAnnotations["cwii-az-sources"] | startswith("client-id=workload inject=workload tenant-id=workload")'
}

@test "StatefulSet owner is one workload level" {
  scenario az-statefulset
  mutated
  pod --argjson e "$AZ_ENV" '.spec.containers[0].env == $e'
  resp '.auditAnnotations["cwii-az-sources"] | startswith("client-id=workload inject=workload tenant-id=workload")'
}

@test "DaemonSet owner is one workload level" {
  scenario az-daemonset
  mutated
  pod --argjson e "$AZ_ENV" '.spec.containers[0].env == $e'
  pod '.metadata.annotations["cwii.dev/injected"] == "az"'
  resp '.auditAnnotations["cwii-az-sources"] | startswith("client-id=workload inject=workload tenant-id=workload")'
}

@test "missing owner (Cannot find): empty level, no Deployment lookup, a warning, still injected" {
  scenario az-missing-owner
  mutated
  pod --argjson e "$AZ_ENV" '.spec.containers[0].env == $e'
  warnings_are "cwii: ReplicaSet apps/web-gone not found; its annotations are not read"
}

@test "other lookup error (RBAC) denies the pod, naming the object and the fix" {
  scenario az-lookup-error-denied
  response_ok
  resp '.allowed == false and .status.code == 500 and .patch == null'
  resp '.status.message | startswith("cwii: cannot read Namespace apps to resolve cwii.dev annotations: ")'
  resp '.status.message | contains("Policy has not been granted access to Kubernetes v1/Namespace resources")'
  resp '.status.message | endswith("Grant the policy server `get` on namespaces (see examples/rbac.yaml), or set the policy setting lookupFailure: ignore")'
  resp '.status.message | contains("..") | not'
}

@test "pod-level false for all providers beats the namespace with zero lookups" {
  # session.yml is `[]`: any lookup would fail the replay and deny the pod.
  scenario pod-false-beats-namespace
  unchanged
  resp '.warnings == null and .auditAnnotations == null and .status == null'
}

@test "levels skipped: the pod answers every key of the only open provider, zero lookups" {
  # session.yml is `[]`: any lookup would fail the replay and deny the pod.
  scenario skip-lookups-pod-has-every-key
  mutated
  pod --argjson v "$(token_volume az api://AzureADTokenExchange 7200)" '.spec.volumes == [$v]'
  [ "$(env_of app AZURE_AUTHORITY_HOST)" = https://login.microsoftonline.com/ ]
  resp '.auditAnnotations == {"cwii-az-sources": "audience=pod authority-host=pod client-id=pod inject=pod skip-containers=pod tenant-id=pod token-expiration=pod verify=pod verify-enforce=pod verify-image=pod"}'
}

@test "levels skipped: the Deployment answers every key, ServiceAccount and namespace are not read" {
  # session.yml holds only the ReplicaSet and the Deployment.
  scenario skip-lookups-workload-has-every-key
  mutated
  pod --argjson v "$(token_volume az api://AzureADTokenExchange 7200)" '.spec.volumes == [$v]'
  [ "$(env_of app AZURE_CLIENT_ID)" = "$CLIENT" ]
  resp '.auditAnnotations == {"cwii-az-sources": "audience=workload authority-host=workload client-id=workload inject=workload skip-containers=workload tenant-id=workload token-expiration=workload verify=workload verify-enforce=workload verify-image=workload"}'
}

@test "settings.defaults never count for skipping: the namespace is still read and wins over them" {
  scenario skip-lookups-defaults-never-count
  mutated
  [ "$(env_of app AZURE_AUTHORITY_HOST)" = https://login.partner.microsoftonline.cn/ ]
  resp '.auditAnnotations["cwii-az-sources"] | contains("authority-host=namespace")'
}

@test "invalid values fall through to lower levels, each with a warning" {
  scenario az-invalid-value-fallthrough
  mutated
  [ "$(env_of app AZURE_CLIENT_ID)" = "$CLIENT" ]
  [ "$(env_of app AZURE_TENANT_ID)" = "$TENANT" ]
  pod --argjson v "$(token_volume az api://AzureADTokenExchange 1800)" '.spec.volumes == [$v]'
  warnings_are \
    'cwii: ignored cwii.dev/az-inject="yes please" on pod (expected true or false)' \
    'cwii: ignored cwii.dev/az-token-expiration="1h" on pod (expected an integer number of seconds)' \
    'cwii: ignored cwii.dev/az-client-id="   " on pod (expected a non-empty value)'
  resp '.auditAnnotations["cwii-az-sources"] == "client-id=serviceaccount inject=namespace tenant-id=pod token-expiration=namespace audience=settings"'
}

@test "native sidecar and regular init container injected, skip list honoured" {
  scenario az-init-containers-skip
  mutated
  jq '.object.spec' "$REQUEST" >"$BATS_TEST_TMPDIR/in-spec.json"
  pod --slurpfile in "$BATS_TEST_TMPDIR/in-spec.json" --argjson e "$AZ_ENV" --argjson m "$AZ_MOUNT" '
    ($in[0]) as $s
    | [.spec.initContainers[].name] == ["migrate", "istio-proxy", "log-shipper"]
    and .spec.containers[0].env == $e and .spec.containers[0].volumeMounts == [$m]
    and .spec.containers[1] == $s.containers[1]
    and .spec.initContainers[0] == ($s.initContainers[0] + {env: $e, volumeMounts: [$m]})
    and .spec.initContainers[1] == $s.initContainers[1]
    and .spec.initContainers[2] == ($s.initContainers[2] + {env: $e, volumeMounts: [$m]})
    and .spec.initContainers[2].restartPolicy == "Always"'
  warnings_are
}

@test "env the container already defines is kept as written, with a warning each" {
  scenario az-user-env-kept
  mutated
  pod '.spec.containers[0].env == [
    {"name": "AZURE_CLIENT_ID", "valueFrom": {"secretKeyRef": {"name": "azure-ids", "key": "client-id"}}},
    {"name": "AZURE_TENANT_ID", "value": "33333333-3333-3333-3333-333333333333"},
    {"name": "LOG_LEVEL", "value": "debug"},
    {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/cwii.dev/az/token"}]'
  warnings_are \
    "cwii: container 'app' keeps its own AZURE_CLIENT_ID; az did not set it" \
    "cwii: container 'app' keeps its own AZURE_TENANT_ID; az did not set it"
}

@test "reserved volume cwii-az-token of type hostPath is replaced, never trusted" {
  scenario az-reserved-hostpath-volume
  mutated
  pod --argjson v "$(token_volume az api://AzureADTokenExchange 3600)" \
    '.spec.volumes == [{"name": "data", "emptyDir": {}}, $v]'
  pod '[.. | objects | select(has("hostPath"))] == []'
  pod '[.. | strings | select(contains("/etc/kubernetes/pki"))] == []'
  pod --argjson m "$AZ_MOUNT" '.spec.containers[0].volumeMounts == [{"name": "data", "mountPath": "/data"}, $m]'
  warnings_are "cwii: replaced pod volume 'cwii-az-token': the name is reserved for the policy"
}

@test "mount-path clash is denied, naming container and path" {
  scenario az-mount-path-clash
  denied_with "cwii: container 'app' already mounts volume 'certs' at /var/run/secrets/cwii.dev/az, where az needs its token; remove that mount or list the container in cwii.dev/az-skip-containers" 400
}

@test "unknown fields, startupProbe and sidecar restartPolicy survive: the patch never removes or replaces them" {
  scenario az-unknown-fields-survive
  mutated
  # Only additions: nothing the user wrote is removed or overwritten.
  patch_has 'map(select(.op != "add")) == []'
  patch_has 'map(.path) | all(test("futureField|startupProbe|resizePolicy|restartPolicy|x-unknown|hostUsers|schedulingGates|status|topLevelUnknown") | not)'
  # Strip exactly what the policy owns: what remains is the input, byte for byte.
  jq -cS '.object' "$REQUEST" >"$BATS_TEST_TMPDIR/in.json"
  jq -cS 'del(.metadata.annotations["cwii.dev/injected"], .spec.volumes)
          | .spec.containers[] |= del(.env, .volumeMounts)
          | .spec.initContainers[] |= del(.env, .volumeMounts)' "$POD" >"$BATS_TEST_TMPDIR/stripped.json"
  cmp "$BATS_TEST_TMPDIR/in.json" "$BATS_TEST_TMPDIR/stripped.json"
  pod '.spec.initContainers[0].restartPolicy == "Always" and .spec.initContainers[0]["x-unknown"] == 1'
  pod '.spec.containers[0].startupProbe.failureThreshold == 30 and .spec.containers[0].futureField.nested[1].deep == true'
}

@test "idempotent: the policy run on its own output changes nothing (az)" {
  scenario az-pod-annotations
  mutated
  assert_idempotent "$DATA/az-pod-annotations/session.yml"
  resp '.warnings == null'
}

@test "non-Pod kind (Deployment CREATE) is accepted unchanged without lookups" {
  scenario non-pod-kind
  unchanged
  resp '.warnings == null and .auditAnnotations == null'
}

@test "Pod UPDATE is accepted unchanged without lookups" {
  scenario pod-update
  unchanged
  resp '.warnings == null and .auditAnnotations == null'
}

# ============================================================ AWS, GCP, verify

@test "aws only: role, token file, region twice, session name, regional endpoints, sts audience" {
  scenario aws-only
  mutated
  pod --arg arn "$ARN" '.spec.containers[0].env == [
    {"name": "AWS_ROLE_ARN", "value": $arn},
    {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/cwii.dev/aws/token"},
    {"name": "AWS_REGION", "value": "eu-west-1"},
    {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"},
    {"name": "AWS_ROLE_SESSION_NAME", "value": "reports-session"},
    {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"}]'
  pod --argjson v "$(token_volume aws sts.amazonaws.com 3600)" '.spec.volumes == [$v]'
  pod '.spec.containers[0].volumeMounts == [{"name": "cwii-aws-token", "mountPath": "/var/run/secrets/cwii.dev/aws", "readOnly": true}]'
  pod '.metadata.annotations["cwii.dev/injected"] == "aws"'
  resp '.auditAnnotations == {"cwii-aws-sources": "inject=pod region=pod role-arn=pod role-session-name=pod sts-regional-endpoints=pod audience=settings token-expiration=settings"}'
}

@test "gcp direct, downward-api: credentials annotation, downwardAPI volume, GOOGLE_APPLICATION_CREDENTIALS" {
  scenario gcp-downward-api
  mutated
  pod --argjson c "$(expected_credentials "$GCP_AUD" /var/run/secrets/cwii.dev/gcp/token)" \
    '.metadata.annotations["cwii.dev/gcp-credentials"] | fromjson == $c'
  pod --argjson v "$(token_volume gcp "$GCP_AUD" 3600)" '.spec.volumes == [$v,
    {"name": "cwii-gcp-creds", "downwardAPI": {"items": [{"path": "credentials.json",
      "fieldRef": {"fieldPath": "metadata.annotations['"'"'cwii.dev/gcp-credentials'"'"']"}}]}}]'
  pod '.spec.containers[0].volumeMounts == [
    {"name": "cwii-gcp-token", "mountPath": "/var/run/secrets/cwii.dev/gcp", "readOnly": true},
    {"name": "cwii-gcp-creds", "mountPath": "/var/run/secrets/cwii.dev/gcp-creds", "readOnly": true}]'
  pod '.spec.containers[0].env == [{"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/run/secrets/cwii.dev/gcp-creds/credentials.json"}]'
  pod '.spec.initContainers == null and .metadata.annotations["cwii.dev/injected"] == "gcp"'
  warnings_are
}

@test "gcp impersonation: GSA from the ServiceAccount adds service_account_impersonation_url" {
  scenario gcp-impersonation
  mutated
  pod --argjson c "$(expected_credentials "$GCP_AUD" /var/run/secrets/cwii.dev/gcp/token "$GSA")" \
    '.metadata.annotations["cwii.dev/gcp-credentials"] | fromjson == $c'
  resp '.auditAnnotations["cwii-gcp-sources"] == "audience=namespace inject=pod service-account=serviceaccount token-expiration=settings"'
}

@test "gcp init-container delivery: emptyDir, writer first before the user init container" {
  scenario gcp-init-container
  mutated
  pod '[.spec.initContainers[].name] == ["cwii-gcp-creds-writer", "fetch-config"]'
  pod --argjson v "$(token_volume gcp "$GCP_AUD" 3600)" '.spec.volumes == [$v, {"name": "cwii-gcp-creds", "emptyDir": {}}]'
  pod --argjson c "$(expected_credentials "$GCP_AUD" /var/run/secrets/cwii.dev/gcp/token)" --argjson r "$RESOURCES" --argjson s "$WRITER_SECURITY" '
    .spec.initContainers[0] as $w
    | ($w.env | length) == 1 and $w.env[0].name == "CWII_GCP_CREDS_JSON" and ($w.env[0].value | fromjson) == $c
    and $w.image == "busybox:1.38.0"
    and $w.command == ["sh", "-c", "printf '"'"'%s'"'"' \"$CWII_GCP_CREDS_JSON\" > '"'"'/var/run/secrets/cwii.dev/gcp-creds/credentials.json'"'"'"]
    and $w.volumeMounts == [{"name": "cwii-gcp-creds", "mountPath": "/var/run/secrets/cwii.dev/gcp-creds", "readOnly": false}]
    and $w.resources == $r and $w.securityContext == $s and $w.imagePullPolicy == "IfNotPresent"'
  [ "$(env_of fetch-config GOOGLE_APPLICATION_CREDENTIALS)" = /var/run/secrets/cwii.dev/gcp-creds/credentials.json ]
  [ "$(env_of app GOOGLE_APPLICATION_CREDENTIALS)" = /var/run/secrets/cwii.dev/gcp-creds/credentials.json ]
  [ "$(env_of cwii-gcp-creds-writer GOOGLE_APPLICATION_CREDENTIALS)" = "<unset>" ]
  pod '.metadata.annotations | has("cwii.dev/gcp-credentials") | not'
  assert_idempotent "$DATA/gcp-init-container/session.yml"
}

@test "gcp delivery config-map is served as downward-api with a warning" {
  scenario gcp-config-map
  mutated
  pod '(.spec.volumes[] | select(.name == "cwii-gcp-creds") | .downwardAPI.items[0].path) == "credentials.json"'
  pod '.metadata.annotations["cwii.dev/gcp-credentials"] | fromjson | .type == "external_account"'
  pod '.spec.initContainers == null'
  warnings_are "cwii: gcp delivery config-map is served as downward-api (a policy cannot write ConfigMaps; the file path is the same)"
}

@test "gcp without any audience is skipped with a warning" {
  scenario gcp-no-audience
  unchanged
  warnings_are "cwii: gcp skipped: no audience (set cwii.dev/gcp-audience or the setting providers.gcp.defaultAudience)"
  resp '.auditAnnotations == null'
}

@test "gcp delivery in cwii's spelling (initContainer) is accepted: writer, emptyDir, no warning" {
  scenario gcp-delivery-cwii-spelling
  mutated
  pod '[.spec.initContainers[].name] == ["cwii-gcp-creds-writer", "fetch-config"]'
  pod '(.spec.volumes[] | select(.name == "cwii-gcp-creds")) == {"name": "cwii-gcp-creds", "emptyDir": {}}'
  pod '.metadata.annotations | has("cwii.dev/gcp-credentials") | not'
  warnings_are
}

@test "aws region pair: a container with its own AWS_REGION or AWS_DEFAULT_REGION gets neither" {
  scenario aws-region-pair
  mutated
  pod '[.spec.containers[0].env[].name] == ["AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]'
  [ "$(env_of app AWS_REGION)" = us-east-2 ]
  pod '[.spec.containers[1].env[].name] == ["AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]'
  pod '.spec.containers[1].env[0].valueFrom.configMapKeyRef.key == "region"'
  pod '[.spec.containers[2].env[] | "\(.name)=\(.value)"] == ["AWS_ROLE_ARN=arn:aws:iam::111122223333:role/reports", "AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/secrets/cwii.dev/aws/token", "AWS_REGION=eu-west-1", "AWS_DEFAULT_REGION=eu-west-1"]'
  warnings_are \
    "cwii: container 'app' keeps its own AWS_REGION; aws set none of AWS_REGION, AWS_DEFAULT_REGION (they go together)" \
    "cwii: container 'batch' keeps its own AWS_DEFAULT_REGION; aws set none of AWS_REGION, AWS_DEFAULT_REGION (they go together)"
  assert_idempotent "$DATA/aws-region-pair/session.yml"
}

@test "aws without a region at any level: injected, with a warning naming the keys and the SDKs" {
  scenario aws-no-region
  mutated
  [ "$(env_of app AWS_ROLE_ARN)" = "$ARN" ]
  [ "$(env_of app AWS_REGION)" = "<unset>" ]
  warnings_are "$AWS_NO_REGION"
  # A cluster-wide region in settings.defaults is the fix the warning names.
  evaluate "$DATA/aws-no-region/request.json" "$DATA/aws-no-region/session.yml" \
    --settings-json '{"defaults": {"cwii.dev/aws-region": "eu-west-1"}}'
  mutated
  [ "$(env_of app AWS_REGION)" = eu-west-1 ]
  [ "$(env_of app AWS_DEFAULT_REGION)" = eu-west-1 ]
  warnings_are
}

@test "triple provider: three tokens with three audiences, every container, marker aws,az,gcp" {
  scenario triple-provider
  mutated
  pod --arg g "$GCP_AUD" '[.spec.volumes[] | select(.projected) | {(.name): .projected.sources[0].serviceAccountToken.audience}] | add
    == {"cwii-gcp-token": $g, "cwii-aws-token": "sts.amazonaws.com", "cwii-az-token": "api://AzureADTokenExchange"}'
  pod '[.spec.volumes[].name] | sort == ["cwii-aws-token", "cwii-az-token", "cwii-gcp-creds", "cwii-gcp-token"]'
  pod '.spec.containers | length == 2 and all(
    ([.volumeMounts[].mountPath] | sort) == ["/var/run/secrets/cwii.dev/aws", "/var/run/secrets/cwii.dev/az", "/var/run/secrets/cwii.dev/gcp", "/var/run/secrets/cwii.dev/gcp-creds"]
    and ([.env[].name] | sort) == ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_TENANT_ID", "GOOGLE_APPLICATION_CREDENTIALS"])'
  pod '.metadata.annotations["cwii.dev/injected"] == "aws,az,gcp"'
  resp '.auditAnnotations | keys == ["cwii-aws-sources", "cwii-az-sources", "cwii-gcp-sources"]'
  assert_idempotent "$DATA/triple-provider/session.yml"
}

# The verify init container of a provider, as SPEC §4 describes it.
verify_container() { # PROVIDER IMAGE SCRIPT ENV_JSON MOUNTS_JSON
  jq -cn --arg p "$1" --arg image "$2" --arg script "$3" --argjson env "$4" --argjson mounts "$5" \
    --argjson r "$RESOURCES" --argjson s "$SECURITY" \
    '{name: "cwii-\($p)-verify", image: $image, imagePullPolicy: "IfNotPresent", command: ["sh", "-c", $script], env: $env,
      volumeMounts: $mounts, resources: $r, securityContext: $s}'
}
GCP_ENV='[{"name":"GOOGLE_APPLICATION_CREDENTIALS","value":"/var/run/secrets/cwii.dev/gcp-creds/credentials.json"}]'
GCP_MOUNTS='[{"name":"cwii-gcp-token","mountPath":"/var/run/secrets/cwii.dev/gcp","readOnly":true},{"name":"cwii-gcp-creds","mountPath":"/var/run/secrets/cwii.dev/gcp-creds","readOnly":true}]'
AWS_ENV='[{"name":"AWS_ROLE_ARN","value":"arn:aws:iam::111122223333:role/reports"},{"name":"AWS_WEB_IDENTITY_TOKEN_FILE","value":"/var/run/secrets/cwii.dev/aws/token"}]'
AWS_MOUNTS='[{"name":"cwii-aws-token","mountPath":"/var/run/secrets/cwii.dev/aws","readOnly":true}]'

@test "verify non-enforcing: gcp, aws, az check containers appended after the native sidecar" {
  scenario verify-non-enforcing
  mutated
  pod '[.spec.initContainers[].name] == ["istio-proxy", "cwii-gcp-verify", "cwii-aws-verify", "cwii-az-verify"]'
  pod --argjson c "$(verify_container gcp google/cloud-sdk:572.0.0-slim "$GCP_CHECK$NON_ENFORCING" "$GCP_ENV" "$GCP_MOUNTS")" '.spec.initContainers[1] == $c'
  pod --argjson c "$(verify_container aws amazon/aws-cli:2.35.4 "$AWS_CHECK$NON_ENFORCING" "$AWS_ENV" "$AWS_MOUNTS")" '.spec.initContainers[2] == $c'
  pod --argjson c "$(verify_container az mcr.microsoft.com/azure-cli:2.84.0 "$AZ_CHECK$NON_ENFORCING" "$AZ_ENV" "[$AZ_MOUNT]")" '.spec.initContainers[3] == $c'
  # The native sidecar starts first and gets every provider.
  pod '.spec.initContainers[0].restartPolicy == "Always" and (.spec.initContainers[0].volumeMounts | length) == 4'
  assert_idempotent "$DATA/verify-non-enforcing/session.yml"
}

# check_with_stub_clis SCRIPT: runs a verify check with stand-ins for gcloud, aws and az
# whose credential sub-commands print $SECRET (as the real CLIs print a token), and a token
# file holding it; prints everything the container log would show.
SECRET=cwii-test-secret-7f3a9c
check_with_stub_clis() {
  local stubs="$BATS_TEST_TMPDIR/stub-bin" token="$BATS_TEST_TMPDIR/token"
  mkdir -p "$stubs"
  printf '%s' "$SECRET" >"$token"
  cat >"$stubs/gcloud" <<'STUB'
#!/bin/sh
case "$*" in *print-access-token*|*print-identity-token*) echo "$SECRET" ;; *) echo "gcloud: $*" ;; esac
STUB
  cat >"$stubs/aws" <<'STUB'
#!/bin/sh
case "$*" in *assume-role*|*export-credentials*|*get-session-token*) echo "$SECRET" ;;
  *) echo '{"UserId": "AROA:botocore-session", "Account": "111122223333"}' ;; esac
STUB
  cat >"$stubs/az" <<'STUB'
#!/bin/sh
case "$*" in *get-access-token*) echo "$SECRET" ;; *) echo '[{"id": "subscription"}]' ;; esac
STUB
  chmod +x "$stubs"/*
  env -i PATH="$stubs:/usr/bin:/bin" HOME="$BATS_TEST_TMPDIR" SECRET="$SECRET" \
    AZURE_CLIENT_ID=client AZURE_TENANT_ID=tenant AZURE_FEDERATED_TOKEN_FILE="$token" \
    AWS_ROLE_ARN="$ARN" AWS_WEB_IDENTITY_TOKEN_FILE="$token" GOOGLE_APPLICATION_CREDENTIALS="$token" \
    sh -c "$1" 2>&1 || true
}

@test "no added container's command can print a credential into the container log" {
  # The harness catches a leak: the check cwii's policy once shipped printed the token.
  [[ "$(check_with_stub_clis 'gcloud auth application-default print-access-token')" == *"$SECRET"* ]]
  for name in verify-non-enforcing verify-enforcing gcp-init-container; do
    scenario "$name"
    mutated
    mapfile -t scripts < <(jq -r '.spec.initContainers[] | select(.name | startswith("cwii-")) | .command[2]' "$POD")
    [ "${#scripts[@]}" -gt 0 ]
    for script in "${scripts[@]}"; do
      log=$(check_with_stub_clis "$script")
      [[ "$log" != *"$SECRET"* ]] || { echo "$name: '$script' printed the credential: $log" >&2; return 1; }
    done
    # Every container the policy adds is pulled only when missing.
    pod '[.spec.initContainers[] | select(.name | startswith("cwii-")) | .imagePullPolicy] | all(. == "IfNotPresent")'
  done
}

@test "verify enforcing (from the namespace): the check without the non-blocking suffix" {
  scenario verify-enforcing
  mutated
  pod '[.spec.initContainers[].name] == ["istio-proxy", "cwii-gcp-verify", "cwii-aws-verify", "cwii-az-verify"]'
  pod --argjson c "$(verify_container gcp google/cloud-sdk:572.0.0-slim "$GCP_CHECK" "$GCP_ENV" "$GCP_MOUNTS")" '.spec.initContainers[1] == $c'
  pod --argjson c "$(verify_container aws amazon/aws-cli:2.35.4 "$AWS_CHECK" "$AWS_ENV" "$AWS_MOUNTS")" '.spec.initContainers[2] == $c'
  pod --argjson c "$(verify_container az mcr.microsoft.com/azure-cli:2.84.0 "$AZ_CHECK" "$AZ_ENV" "[$AZ_MOUNT]")" '.spec.initContainers[3] == $c'
  pod '[.. | strings | select(contains("non-enforcing"))] == []'
  resp '.auditAnnotations["cwii-az-sources"] | contains("verify-enforce=namespace")'
}

@test "verify image from a ServiceAccount annotation; a stale cwii-aws-verify is replaced" {
  scenario verify-image-from-serviceaccount
  mutated
  pod --argjson c "$(verify_container aws registry.example.com/tools/aws-cli:2.35.4 "$AWS_CHECK$NON_ENFORCING" "$AWS_ENV" "$AWS_MOUNTS")" \
    '.spec.initContainers == [$c]'
  pod '[.. | strings | select(contains("evil.example") or contains("attacker"))] == []'
  warnings_are "$AWS_NO_REGION" "cwii: replaced init container 'cwii-aws-verify': the name is reserved for the policy"
  resp '.auditAnnotations["cwii-aws-sources"] | contains("verify-image=serviceaccount")'
}

# Checks a pod evaluated from a hostile request: every value arrives verbatim, only as an
# env value, image, audience or JSON value, never inside any container command or args.
check_hostile_pod() {
  jq '.object.metadata.annotations' "$REQUEST" >"$BATS_TEST_TMPDIR/a.json"
  local a=(--slurpfile a "$BATS_TEST_TMPDIR/a.json")
  pod "${a[@]}" '($a[0]) as $a
    | [.spec.containers[], .spec.initContainers[] | ((.command // []), (.args // []))[]]
      | all(test("PWN|pwn|rm -rf|reboot") | not)'
  pod "${a[@]}" 'def env_in($c): [.spec.containers[], .spec.initContainers[] | select(.name == $c)][0].env
                                   | map({(.name): .value}) | add;
    ($a[0]) as $a
    | {AZURE_CLIENT_ID: $a["cwii.dev/az-client-id"], AZURE_TENANT_ID: $a["cwii.dev/az-tenant-id"],
       AZURE_AUTHORITY_HOST: $a["cwii.dev/az-authority-host"]} as $az
    | {AWS_ROLE_ARN: $a["cwii.dev/aws-role-arn"], AWS_REGION: $a["cwii.dev/aws-region"],
       AWS_DEFAULT_REGION: $a["cwii.dev/aws-region"], AWS_ROLE_SESSION_NAME: $a["cwii.dev/aws-role-session-name"],
       AWS_STS_REGIONAL_ENDPOINTS: $a["cwii.dev/aws-sts-regional-endpoints"]} as $aws
    | (env_in("app") | with_entries(select(.key | in($az + $aws)))) == $az + $aws
      and (env_in("cwii-az-verify") | with_entries(select(.key | in($az)))) == $az
      and (env_in("cwii-aws-verify") | with_entries(select(.key | in($aws)))) == $aws'
  pod "${a[@]}" '($a[0]) as $a
    | ([.spec.volumes[] | select(.projected) | {(.name): .projected.sources[0].serviceAccountToken.audience}] | add)
      == {"cwii-gcp-token": $a["cwii.dev/gcp-audience"], "cwii-aws-token": $a["cwii.dev/aws-audience"], "cwii-az-token": $a["cwii.dev/az-audience"]}'
  pod "${a[@]}" --arg g "$GCP_CHECK$NON_ENFORCING" --arg w "$AWS_CHECK$NON_ENFORCING" --arg z "$AZ_CHECK$NON_ENFORCING" '($a[0]) as $a
    | [.spec.initContainers[] | select(.name | endswith("-verify")) | {(.name): {image, command}}] | add
      == {"cwii-gcp-verify": {image: $a["cwii.dev/gcp-verify-image"], command: ["sh", "-c", $g]},
          "cwii-aws-verify": {image: $a["cwii.dev/aws-verify-image"], command: ["sh", "-c", $w]},
          "cwii-az-verify": {image: $a["cwii.dev/az-verify-image"], command: ["sh", "-c", $z]}}'
}

# The credentials.json the hostile pod carries, from the writer's env or the annotation.
hostile_credentials_ok() {
  pod --slurpfile a "$BATS_TEST_TMPDIR/a.json" '($a[0]) as $a
    | ([.spec.initContainers[]? | select(.name == "cwii-gcp-creds-writer") | .env[0].value][0]
       // .metadata.annotations["cwii.dev/gcp-credentials"]) | fromjson
    | .audience == $a["cwii.dev/gcp-audience"]
      and .service_account_impersonation_url == "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/\($a["cwii.dev/gcp-service-account"]):generateAccessToken"
      and .credential_source == {"file": "/var/run/secrets/cwii.dev/gcp/token"}
      and (keys | length) == 7'
}

@test "hostile values in every string key reach the pod only as values, never in a command" {
  scenario hostile-values
  mutated
  check_hostile_pod
  hostile_credentials_ok
  pod '[.spec.initContainers[].name] == ["cwii-gcp-creds-writer", "cwii-gcp-verify", "cwii-aws-verify", "cwii-az-verify"]'
  pod '.spec.initContainers[0].command == ["sh", "-c", "printf '"'"'%s'"'"' \"$CWII_GCP_CREDS_JSON\" > '"'"'/var/run/secrets/cwii.dev/gcp-creds/credentials.json'"'"'"]'
}

@test "hostile 10 KiB values and downward-api delivery: credentials.json parses back intact" {
  python3 - "$DATA/hostile-values/request.json" "$BATS_TEST_TMPDIR/request.json" <<'EOF'
import json, sys
req = json.load(open(sys.argv[1]))
a = req["object"]["metadata"]["annotations"]
del a["cwii.dev/gcp-delivery"]  # downward-api: the JSON travels in an annotation
unit = "PWN \"$(id)\" `id` 'q' \\ \n\t; rm -rf / # "
for key in ("cwii.dev/aws-role-session-name", "cwii.dev/gcp-audience", "cwii.dev/az-client-id"):
    v = ("X" + unit * 400)[:10239].rstrip()
    a[key] = v + "Z" * (10240 - len(v))
    assert len(a[key]) == 10240
json.dump(req, open(sys.argv[2], "w"))
EOF
  evaluate "$BATS_TEST_TMPDIR/request.json" "$DATA/hostile-values/session.yml"
  mutated
  check_hostile_pod
  hostile_credentials_ok
  pod '(.metadata.annotations["cwii.dev/gcp-credentials"] | fromjson | .audience | length) == 10240'
  [ "$(env_of app AWS_ROLE_SESSION_NAME | wc -c)" -eq 10241 ]
}

# ============================================================ settings

@test "settings defaults supply the tenant (azwi habit: SA has only inject and client-id)" {
  scenario settings-tenant-default
  mutated
  pod --argjson e "$AZ_ENV" '.spec.containers[0].env == $e'
  resp '.auditAnnotations["cwii-az-sources"] == "client-id=serviceaccount inject=serviceaccount tenant-id=defaults audience=settings token-expiration=settings"'
}

@test "disabled provider with its annotations present: no injection, a warning" {
  scenario settings-provider-disabled
  unchanged
  warnings_are "cwii: cwii.dev/az-inject is true but provider az is disabled in the policy settings"
  resp '.auditAnnotations == null'
}

@test "custom mountRoot moves every path of every provider" {
  scenario settings-mount-root
  mutated
  pod '[.. | strings | select(contains("/var/run/secrets"))] == []'
  pod '.spec.containers[0].volumeMounts | map({(.name): .mountPath}) | add
    == {"cwii-gcp-token": "/cwii/gcp", "cwii-gcp-creds": "/cwii/gcp-creds", "cwii-aws-token": "/cwii/aws", "cwii-az-token": "/cwii/az"}'
  [ "$(env_of app AZURE_FEDERATED_TOKEN_FILE)" = /cwii/az/token ]
  [ "$(env_of app AWS_WEB_IDENTITY_TOKEN_FILE)" = /cwii/aws/token ]
  [ "$(env_of app GOOGLE_APPLICATION_CREDENTIALS)" = /cwii/gcp-creds/credentials.json ]
  [ "$(env_of cwii-aws-verify AWS_WEB_IDENTITY_TOKEN_FILE)" = /cwii/aws/token ]
  pod '(.spec.initContainers[] | select(.name == "cwii-gcp-creds-writer")) as $w
    | ($w.env[0].value | fromjson | .credential_source.file) == "/cwii/gcp/token"
    and ($w.command[2] | endswith("> '"'"'/cwii/gcp-creds/credentials.json'"'"'"))
    and $w.volumeMounts[0].mountPath == "/cwii/gcp-creds"'
  pod '(.spec.initContainers[] | select(.name == "cwii-aws-verify") | .volumeMounts[0].mountPath) == "/cwii/aws"'
}

@test "nativeAnnotations on: the azwi label and the EKS ServiceAccount role give both webhooks' layouts; GKE is not read" {
  scenario settings-native-annotations-on
  mutated
  [ "$(env_of app AZURE_CLIENT_ID)" = "$CLIENT" ]
  [ "$(env_of app AZURE_TENANT_ID)" = "$TENANT" ]
  [ "$(env_of app AZURE_FEDERATED_TOKEN_FILE)" = /var/run/secrets/azure/wi/token/azure-identity-token ]
  [ "$(env_of app AZURE_AUTHORITY_HOST)" = https://login.microsoftonline.com/ ]
  [ "$(env_of app AWS_ROLE_ARN)" = "$ARN" ]
  [ "$(env_of app AWS_WEB_IDENTITY_TOKEN_FILE)" = /var/run/secrets/eks.amazonaws.com/serviceaccount/token ]
  vol=azure-workload-identity-reserved-$(printf '%s' reports | sha256sum | cut -c1-30)
  pod --arg v "$vol" '[.spec.volumes[].name] == ["aws-iam-token", $v]'
  pod '[.spec.containers[0].volumeMounts[].mountPath] == ["/var/run/secrets/eks.amazonaws.com/serviceaccount", "/var/run/secrets/azure/wi"]'
  # Neither webhook writes a marker, and GKE's annotation no longer enables gcp.
  pod '.metadata.annotations == null'
  resp '.auditAnnotations | keys == ["cwii-aws-sources", "cwii-az-sources"]'
  resp '.auditAnnotations["cwii-az-sources"] | startswith("azwi-use=pod(azure.workload.identity/use) client-id=serviceaccount(azure.workload.identity/client-id)")'
  resp '.auditAnnotations["cwii-aws-sources"] | contains("inject=serviceaccount(eks.amazonaws.com/role-arn)")'
}

@test "nativeAnnotations off (default): the same azwi/EKS/GKE ServiceAccount injects nothing" {
  scenario settings-native-annotations-off
  unchanged
  resp '.warnings == null and .auditAnnotations == null'
}

@test "native keys count only where their webhook reads them: EKS keys on the pod are ignored" {
  scenario settings-namespace-cwii-beats-pod-native
  mutated
  [ "$(env_of app AWS_ROLE_ARN)" = arn:aws:iam::111122223333:role/from-namespace ]
  pod --argjson v "$(token_volume aws sts.amazonaws.com 3600)" '.spec.volumes == [$v]'
  resp '.auditAnnotations["cwii-aws-sources"] == "inject=namespace role-arn=namespace audience=settings token-expiration=settings"'
}

@test "lookupFailure deny: an unreadable ServiceAccount denies the pod" {
  scenario settings-lookup-failure-deny
  response_ok
  resp '.allowed == false and .status.code == 500 and .patch == null'
  resp '.status.message | startswith("cwii: cannot read ServiceAccount apps/default to resolve cwii.dev annotations: ")'
  resp '.status.message | contains("Policy has not been granted access to Kubernetes v1/ServiceAccount resources")'
  resp '.status.message | contains("Grant the policy server `get` on serviceaccounts")'
}

@test "lookupFailure ignore: an unreadable ServiceAccount is a warning, the pod is injected" {
  scenario settings-lookup-failure-ignore
  mutated
  pod --argjson e "$AZ_ENV" '.spec.containers[0].env == $e'
  resp '(.warnings | length) == 1'
  resp '.warnings[0] | startswith("cwii: cannot read ServiceAccount apps/default (ignored by lookupFailure: ignore): ")'
  resp '.warnings[0] | contains("Policy has not been granted access to Kubernetes v1/ServiceAccount resources")'
}

# invalid_settings FILE TEXT...: the runner refuses the settings (non-zero exit) and its
# output carries the policy's message naming the field.
invalid_settings() {
  local file="$DATA/settings/$1"
  shift
  run kw_all --request-path "$DATA/az-pod-annotations/request.json" --settings-path "$file"
  [ "$status" -ne 0 ] || { echo "settings $file were accepted: $output" >&2; return 1; }
  local text
  for text in "$@"; do
    [[ "$output" == *"$text"* ]] || { echo "expected '$text' in: $output" >&2; return 1; }
  done
  [[ "$output" != *'"allowed"'* ]] || { echo "an evaluation ran: $output" >&2; return 1; }
}

@test "invalid settings: unknown field" {
  invalid_settings invalid-unknown-field.json 'unknown field `mountRot`'
}

@test "invalid settings: defaults key that is not an input key" {
  invalid_settings invalid-defaults-not-input-key.json 'invalid settings field `defaults.team`: not a cwii.dev input key'
}

@test "invalid settings: cwii.dev/injected in defaults" {
  invalid_settings invalid-defaults-injected-marker.json 'invalid settings field `defaults.cwii.dev/injected`' 'written by the policy'
}

@test "invalid settings: invalid value in defaults" {
  invalid_settings invalid-defaults-invalid-value.json 'invalid settings field `defaults.cwii.dev/az-inject`: "maybe" is invalid (expected true or false)'
}

@test "invalid settings: tokenExpirationSeconds 599" {
  invalid_settings invalid-token-expiration-599.json 'invalid settings field `tokenExpirationSeconds`: 599 is below the minimum of 600'
}

@test "invalid settings: unknown gcp delivery mode" {
  invalid_settings invalid-unknown-delivery.json 'invalid settings field `providers.gcp.delivery`: unknown delivery mode "carrier-pigeon"'
}

@test "invalid settings: unknown lookupFailure" {
  invalid_settings invalid-unknown-lookup-failure.json 'invalid settings field `lookupFailure`: "maybe" (expected deny or ignore)'
}

@test "invalid settings: empty verify image reference" {
  invalid_settings invalid-empty-verify-image.json 'invalid settings field `providers.az.verifyImage`: the image reference is empty'
}

@test "invalid settings: blank gcp init image reference" {
  invalid_settings invalid-empty-init-image.json 'invalid settings field `providers.gcp.initImage`: the image reference is empty'
}

@test "invalid settings: relative mountRoot" {
  invalid_settings invalid-relative-mount-root.json 'invalid settings field `mountRoot`'
}

@test "invalid settings: malformed injectedContainerResources" {
  invalid_settings invalid-malformed-resources.json 'invalid settings field `injectedContainerResources.requests.cpu`: "lots" is not a Kubernetes quantity'
}

@test "invalid settings through --settings-json are refused the same way" {
  run kw_all --request-path "$DATA/az-pod-annotations/request.json" --settings-json '{"providers":{"ibm":{}}}'
  [ "$status" -ne 0 ]
  [[ "$output" == *'invalid settings field `providers.ibm`: unknown provider'* ]]
}

# ============================================================ malformed input

@test "malformed: a Pod request whose object is a string gets a clear denial" {
  scenario malformed-object-string
  denied_with "cwii: the request object is not a Pod object" 400
}

@test "malformed: a Pod request whose object is an array gets a clear denial" {
  jq '.object = [1, "two", {"three": 3}]' "$DATA/malformed-object-string/request.json" >"$BATS_TEST_TMPDIR/request.json"
  evaluate "$BATS_TEST_TMPDIR/request.json" "$DATA/malformed-object-string/session.yml"
  denied_with "cwii: the request object is not a Pod object" 400
}

@test "malformed: a pod without spec gets a clear denial" {
  scenario malformed-pod-without-spec
  denied_with "cwii: cannot inject into a malformed pod: the pod has no spec object" 400
}

@test "malformed: spec.containers that is not an array gets a clear denial" {
  scenario malformed-containers-not-array
  denied_with "cwii: cannot inject into a malformed pod: spec.containers must be an array" 400
}

@test "large: a 64 KiB annotation value is injected whole; a 64 KiB junk value gives a short warning" {
  jq --arg big "$(head -c 65536 /dev/zero | tr '\0' 'c')" --arg junk "$(head -c 65536 /dev/zero | tr '\0' 'x')" \
    '.object.metadata.annotations["cwii.dev/az-client-id"] = $big
     | .object.metadata.annotations["cwii.dev/aws-inject"] = $junk' \
    "$DATA/az-pod-annotations/request.json" >"$BATS_TEST_TMPDIR/request.json"
  evaluate "$BATS_TEST_TMPDIR/request.json" "$DATA/az-pod-annotations/session.yml"
  mutated
  pod '(.spec.containers[0].env[0] | .name == "AZURE_CLIENT_ID" and (.value | length) == 65536 and (.value | test("^c+$")))'
  resp '(.warnings | length) == 1 and (.warnings[0] | length) < 256'
  resp '.warnings[0] | test("^cwii: ignored cwii.dev/aws-inject=\"x{48}…\" on pod \\(expected true or false\\)$")'
}

@test "large: a pod with 500 containers gets every one injected" {
  jq '.object.spec.containers = [range(500) | {name: "c\(.)", image: "busybox:1.38.0", args: ["sleep", "\(.)"]}]' \
    "$DATA/az-pod-annotations/request.json" >"$BATS_TEST_TMPDIR/request.json"
  evaluate "$BATS_TEST_TMPDIR/request.json" "$DATA/az-pod-annotations/session.yml"
  mutated
  pod --argjson e "$AZ_ENV" --argjson m "$AZ_MOUNT" '.spec.containers | length == 500
    and all(.env == $e and .volumeMounts == [$m])
    and ([.[].name] == [range(500) | "c\(.)"]) and .[499].args == ["sleep", "499"]'
  pod '[.spec.volumes[].name] == ["cwii-az-token"]'
}

@test "large: a ~1 MiB request is evaluated and its big values survive" {
  head -c 1048576 /dev/zero | tr '\0' b >"$BATS_TEST_TMPDIR/big.txt"
  jq --rawfile big "$BATS_TEST_TMPDIR/big.txt" \
    '.object.spec.containers[0].env = [{"name": "BIG", "value": $big}]' \
    "$DATA/az-pod-annotations/request.json" >"$BATS_TEST_TMPDIR/request.json"
  [ "$(wc -c <"$BATS_TEST_TMPDIR/request.json")" -gt 1048576 ]
  evaluate "$BATS_TEST_TMPDIR/request.json" "$DATA/az-pod-annotations/session.yml"
  mutated
  pod --argjson e "$AZ_ENV" '.spec.containers[0].env[0].name == "BIG" and (.spec.containers[0].env[0].value | length) == 1048576
    and .spec.containers[0].env[1:] == $e'
  patch_has 'map(select(.op != "add")) == []'
}

@test "malformed: a validate payload that is not JSON gets a clear denial, never a trap" {
  # kwctl always sends well-formed JSON; kwrun's `call` hands the module raw bytes, the way a
  # broken or hostile host could. Skipped under a runner without it.
  "$KWCTL" call --help >/dev/null 2>&1 || skip "$KWCTL has no call subcommand (kwrun only)"
  local module="$REPO_ROOT/policy.wasm"
  printf 'not json {' >"$BATS_TEST_TMPDIR/payload"
  run "$KWCTL" call --payload-path "$BATS_TEST_TMPDIR/payload" "$module" validate
  [ "$status" -eq 0 ]
  jq -e '.accepted == false and .code == 400 and .mutated_object == null
    and (.message | startswith("cwii: cannot read the admission request: "))' <<<"$output"
  head -c 4096 /dev/urandom >"$BATS_TEST_TMPDIR/payload"
  run "$KWCTL" call --payload-path "$BATS_TEST_TMPDIR/payload" "$module" validate
  [ "$status" -eq 0 ]
  jq -e '.accepted == false and .code == 400' <<<"$output"
  printf '{"request": 7, "settings": {}}' >"$BATS_TEST_TMPDIR/payload"
  run "$KWCTL" call --payload-path "$BATS_TEST_TMPDIR/payload" "$module" validate
  [ "$status" -eq 0 ]
  jq -e '.accepted == false and .code == 400 and (.message | startswith("cwii: cannot read the admission request: "))' <<<"$output"
  printf '[[[' >"$BATS_TEST_TMPDIR/payload"
  run "$KWCTL" call --payload-path "$BATS_TEST_TMPDIR/payload" "$module" validate_settings
  [ "$status" -eq 0 ]
  jq -e '.valid == false and (.message | startswith("settings are not valid JSON: "))' <<<"$output"
}

# ============================================================ the example manifest

@test "the example ClusterAdmissionPolicy runs in place of a module: its settings apply" {
  # The manifest names registry://ghcr.io/cwii-dev/policies/cwii:v0.1.0; put the built module
  # where kwctl (and kwrun) keep pulled policies, in a private cache.
  local module
  module=$(sed -n 's|^ *module: registry://||p' "$REPO_ROOT/examples/cluster-admission-policy.yaml")
  [ -n "$module" ]
  export XDG_CACHE_HOME="$BATS_TEST_TMPDIR/cache"
  unset KWCTL_STORE
  mkdir -p "$(dirname "$XDG_CACHE_HOME/kubewarden/store/registry/$module")"
  cp "$POLICY" "$XDG_CACHE_HOME/kubewarden/store/registry/$module"
  # The pod names no tenant: it can only come from the manifest's settings.defaults.
  jq 'del(.object.metadata.annotations["cwii.dev/az-tenant-id"])' \
    "$DATA/az-pod-annotations/request.json" >"$BATS_TEST_TMPDIR/request.json"
  REQUEST="$BATS_TEST_TMPDIR/request.json"
  run_manifest() {
    "$KWCTL" run --request-path "$REQUEST" --allow-context-aware \
      --replay-host-capabilities-interactions "$DATA/az-pod-annotations/session.yml" \
      "$REPO_ROOT/examples/cluster-admission-policy.yaml" 2>"$BATS_TEST_TMPDIR/stderr"
  }
  run run_manifest
  RESPONSE="$BATS_TEST_TMPDIR/response.json"
  POD="$BATS_TEST_TMPDIR/pod.json"
  printf '%s\n' "$output" >"$RESPONSE"
  mutated
  [ "$(env_of app AZURE_TENANT_ID)" = 22222222-2222-2222-2222-222222222222 ]
  pod --argjson v "$(token_volume az api://AzureADTokenExchange 3600)" '.spec.volumes == [$v]'
  resp '.auditAnnotations == {"cwii-az-sources": "client-id=pod inject=pod tenant-id=defaults audience=settings token-expiration=settings"}'
}
