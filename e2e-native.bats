#!/usr/bin/env bats
# Drop-in mode (SPEC §7, `nativeAnnotations: true`): each test_data/azwi-* and eks-* case
# holds a pod as azwi 1.6/1.5 or the EKS pod identity webhook 0.6.17 would have received it,
# and the outcome written down from reading their sources: the whole pod they return
# (expected.json, without their serialisation by-products), no change (unchanged), or a
# denial (denied.json). Where SPEC §7.4 makes the policy differ on purpose, the case's
# description says so and the file holds the policy's result.

load test_data/helpers

setup_file() {
  [ -x "$KWCTL" ] || command -v "$KWCTL" >/dev/null || { echo "runner $KWCTL not found" >&2; return 1; }
  [ -f "$POLICY" ] || { echo "$POLICY missing: run make annotated-policy.wasm" >&2; return 1; }
}

# native_case NAME: test_data/NAME against its recorded outcome; a mutated pod must also be
# a fixed point (the policy on its own output, as on the webhook's, changes nothing).
native_case() {
  local dir="$DATA/$1"
  scenario "$1"
  if [ -f "$dir/expected.json" ]; then
    mutated
    jq -e --slurpfile want "$dir/expected.json" '. == $want[0]' "$POD" >/dev/null || {
      echo "pod differs from $1/expected.json (< expected, > policy):" >&2
      diff <(jq -S . "$dir/expected.json") <(jq -S . "$POD") >&2
      return 1
    }
    assert_idempotent "$dir/session.yml" --settings-path "$dir/settings.json"
  elif [ -f "$dir/unchanged" ]; then
    unchanged
  else
    response_ok
    jq -e --slurpfile d "$dir/denied.json" '
      .allowed == false and .patch == null and .status.code == $d[0].code
      and (if $d[0].message then .status.message == $d[0].message else true end)
      and ([($d[0].contains // [])[] as $s | .status.message | contains($s)] | all)' "$RESPONSE" >/dev/null || {
      echo "expected the denial in $1/denied.json:" >&2
      cat "$dir/denied.json" >&2
      jq . "$RESPONSE" >&2
      return 1
    }
  fi
}

@test "azwi-already-injected: input is azwi 1.6's output for azwi-v16-default (with its by-products creationTimestamp: null, resources: {}, status: {}): nothing changes" {
  native_case azwi-already-injected
}

@test "azwi-already-injected-proxy: input is azwi 1.6's output for azwi-proxy-native-sidecar: no second proxy, env or mount; nothing changes" {
  native_case azwi-already-injected-proxy
}

@test "azwi-china-cloud-custom-audience: native.azwi.cloud azurechinacloud (case-insensitive) and audience api://AzureADTokenExchangeChina: AZURE_AUTHORITY_HOST https://login.chinacloudapi.cn/, volume audience from settings" {
  native_case azwi-china-cloud-custom-audience
}

@test "azwi-cwii-inject-false: cwii.dev/az-inject: 'false' on a labelled pod beats the native label: untouched" {
  native_case azwi-cwii-inject-false
}

@test "azwi-cwii-inject-without-label: cwii.dev/az-inject true on an unlabelled pod with nativeAnnotations on: §4 layout (cwii-az-token, /var/run/secrets/cwii.dev/az, marker), not azwi's" {
  native_case azwi-cwii-inject-without-label
}

@test "azwi-cwii-keys-win: labelled pod: SA cwii.dev/az-client-id beats SA azure.workload.identity/client-id; namespace cwii.dev/az-audience beats native.azwi.audience; azwi layout kept" {
  native_case azwi-cwii-keys-win
}

@test "azwi-foreign-volume-replaced: a hostPath volume with azwi's reserved name is replaced in place (same index) and the mount of that name is rewritten in place (readOnly: true), as azwi 1.6 does; the policy warns" {
  native_case azwi-foreign-volume-replaced
}

@test "azwi-generate-name: azwi 1.6: empty name, generateName web-7d9f8-: volume name hashes 'web-7d9f8- (prefix)'" {
  native_case azwi-generate-name
}

@test "azwi-init-and-native-sidecar: init containers (plain and native sidecar restartPolicy Always) and containers all injected; restartPolicy and startupProbe kept" {
  native_case azwi-init-and-native-sidecar
}

@test "azwi-label-not-exactly-true: label azure.workload.identity/use: 'True' is not the webhook's objectSelector value: no injection" {
  native_case azwi-label-not-exactly-true
}

@test "azwi-mount-path-clash-denied: container mounts volume 'certs' at /var/run/secrets/azure/wi: azwi appends a second mount (API server rejects); the policy denies with §5's message naming container and path" {
  native_case azwi-mount-path-clash-denied
}

@test "azwi-proxy-classic-sidecar: inject-proxy-sidecar TRUE (case-insensitive), port 8081, proxyNativeSidecar false: azwi-proxy-init appended to initContainers, azwi-proxy prepended to containers" {
  native_case azwi-proxy-classic-sidecar
}

@test "azwi-proxy-false-annotation: inject-proxy-sidecar 'false': azwi injects the proxy (it tests only presence); the policy injects no proxy and warns (SPEC §7.4 deliberate difference); token/env/mount as usual" {
  native_case azwi-proxy-false-annotation
}

@test "azwi-proxy-host-network-denied: inject-proxy-sidecar true on a hostNetwork pod: denied like azwi" {
  native_case azwi-proxy-host-network-denied
}

@test "azwi-proxy-native-sidecar: inject-proxy-sidecar true, default port 8000, proxyNativeSidecar true: azwi-proxy (restartPolicy Always) prepended to initContainers, azwi-proxy-init appended; both get env and mount" {
  native_case azwi-proxy-native-sidecar
}

@test "azwi-proxy-port-not-integer-denied: proxy-sidecar-port 'http': azwi denies (failed to parse proxy sidecar port: strconv.ParseInt: parsing 'http': invalid syntax); the policy denies naming annotation and value" {
  native_case azwi-proxy-port-not-integer-denied
}

@test "azwi-proxy-port-out-of-range-denied: proxy-sidecar-port 70000: azwi passes it on (int32 parse only) and the API server rejects the pod; the policy denies naming annotation and value (SPEC §7.4 deliberate difference)" {
  native_case azwi-proxy-port-out-of-range-denied
}

@test "azwi-sa-label-only: label azure.workload.identity/use: 'true' only on the ServiceAccount, not the pod: no injection" {
  native_case azwi-sa-label-only
}

@test "azwi-sa-missing: ServiceAccount not found: azwi denies (serviceaccounts 'web-sa' not found); the policy warns, treats the level as empty and injects without client id (SPEC §7.4 deliberate difference)" {
  native_case azwi-sa-missing
}

@test "azwi-sa-without-client-id: SA has no client-id: token, mount, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST, no AZURE_CLIENT_ID" {
  native_case azwi-sa-without-client-id
}

@test "azwi-skip-containers: skip-containers ' sidecar;setup ; ' split on ';' and trimmed: init 'setup' and 'sidecar' untouched, 'app' injected" {
  native_case azwi-skip-containers
}

@test "azwi-tenant-and-expiry-from-sa: SA tenant-id and service-account-token-expiration 4800 beat native.azwi.tenantId and the 3600 default" {
  native_case azwi-tenant-and-expiry-from-sa
}

@test "azwi-tenant-defaults-over-native: no SA tenant-id: settings.defaults cwii.dev/az-tenant-id sits above native.azwi.tenantId (SPEC §7.2)" {
  native_case azwi-tenant-defaults-over-native
}

@test "azwi-token-expiration-out-of-range: pod service-account-token-expiration 1800 (< 3600): azwi denies (token expiration 1800 not valid. Expected value to be between 3600 and 86400); the policy warns and uses 3600 (SPEC §7.4 deliberate difference)" {
  native_case azwi-token-expiration-out-of-range
}

@test "azwi-token-expiration-pod-over-sa: pod service-account-token-expiration 7200 beats the SA's 4800" {
  native_case azwi-token-expiration-pod-over-sa
}

@test "azwi-token-expiration-unparsable-falls-through: pod service-account-token-expiration 'abc': azwi denies (strconv.ParseInt: parsing 'abc': invalid syntax); the policy warns and falls through to the SA's 4800 (SPEC §7.4 + §3 fall-through; interpretation)" {
  native_case azwi-token-expiration-unparsable-falls-through
}

@test "azwi-user-env-valuefrom: container defines AZURE_CLIENT_ID via valueFrom (kept, not duplicated); envFrom does not count; the other three appended" {
  native_case azwi-user-env-valuefrom
}

@test "azwi-v15-layout: azwi 1.5 layout (native.azwi.version 1.5): volume azure-identity-token, path azure-identity-token, mount /var/run/secrets/azure/tokens" {
  native_case azwi-v15-layout
}

@test "azwi-v16-default: azwi 1.6: labelled pod, SA client-id, tenant from native.azwi.tenantId: hashed volume appended, env and mount appended" {
  native_case azwi-v16-default
}

@test "eks-already-injected-unchanged: EKS native: the webhook's own output (volume first, STS, region, ARN, token file, mounts in init container and container) goes through unchanged" {
  native_case eks-already-injected-unchanged
}

@test "eks-audience-from-sa: EKS native: SA audience beats native.eks.audience; eks.amazonaws.com/audience on the pod is not read" {
  native_case eks-audience-from-sa
}

@test "eks-basic-sa-role-arn: EKS native: role-arn on the ServiceAccount; volume aws-iam-token created, ARN and token-file env, read-only mount (webhook testdata rawPodWithoutVolumes)" {
  native_case eks-basic-sa-role-arn
}

@test "eks-compose-role-arn-cn: EKS native: composeRoleArn accountId set, partition empty and region cn-north-1: role-arn 'team/reports-reader' becomes arn:aws-cn:iam::111122223333:role/team/reports-reader" {
  native_case eks-compose-role-arn-cn
}

@test "eks-compose-role-arn-full-arn-kept: EKS native: with composeRoleArn on (partition aws-us-gov), a role-arn that contains 'arn:' is used as written" {
  native_case eks-compose-role-arn-full-arn-kept
}

@test "eks-container-all-groups-untouched: EKS native: containers defining a member of each of the three groups (valueFrom counts) are left entirely alone, no mount; the webhook still inserts the aws-iam-token volume (rawPodHasAll)" {
  native_case eks-container-all-groups-untouched
}

@test "eks-container-own-region-and-sts: EKS native: a container with its own AWS_REGION and AWS_STS_REGIONAL_ENDPOINTS gets neither group, another with AWS_DEFAULT_REGION via valueFrom gets no region pair; both get ARN, token file and mount (rawPodHasSTS)" {
  native_case eks-container-own-region-and-sts
}

@test "eks-custom-annotation-prefix: EKS native: native.eks.annotationPrefix iam.example.com; role-arn, sts-regional-endpoints (SA) and token-expiration, skip-containers (pod) under the custom prefix, eks.amazonaws.com/audience on the SA ignored" {
  native_case eks-custom-annotation-prefix
}

@test "eks-cwii-key-beats-native: EKS native: on the ServiceAccount cwii.dev/aws-role-arn beats eks.amazonaws.com/role-arn and cwii.dev/aws-region fills the region; the layout stays the webhook's (native signal present)" {
  native_case eks-cwii-key-beats-native
}

@test "eks-empty-audience-falls-through: EKS native, deliberate difference (SPEC 7.4): SA audience '' is not explicit and falls through to native.eks.audience (warning); the webhook writes a projection without audience" {
  native_case eks-empty-audience-falls-through
}

@test "eks-foreign-volume-replaced: EKS native, deliberate difference (SPEC 7.4): a hostPath volume named aws-iam-token is replaced in place by the projected token, with a warning; the webhook keeps it and mounts it" {
  native_case eks-foreign-volume-replaced
}

@test "eks-init-and-native-sidecar: EKS native: every init container (native sidecar with restartPolicy Always included, kept) then every container gets env and mount (rawPodWithInitContainer)" {
  native_case eks-init-and-native-sidecar
}

@test "eks-inject-false-on-sa: EKS native: cwii.dev/aws-inject 'false' on the ServiceAccount beats its eks.amazonaws.com/role-arn; pod untouched" {
  native_case eks-inject-false-on-sa
}

@test "eks-mount-path-clash-denied: EKS native, deliberate difference (SPEC 7.4): a container already mounting another volume at the token mount path is denied; the webhook appends a second mount and the API server rejects the pod" {
  native_case eks-mount-path-clash-denied
}

@test "eks-region-from-settings: EKS native: native.eks.region eu-west-1 adds AWS_DEFAULT_REGION then AWS_REGION before AWS_ROLE_ARN, in the init container and the container (initPodNeedsRegion)" {
  native_case eks-region-from-settings
}

@test "eks-role-arn-on-pod-ignored: EKS native: eks.amazonaws.com/role-arn on the pod is not read (the webhook reads it only on the ServiceAccount); pod untouched" {
  native_case eks-role-arn-on-pod-ignored
}

@test "eks-role-session-name: EKS native: pod cwii.dev/aws-role-session-name adds AWS_ROLE_SESSION_NAME after the webhook's variables (the webhook itself never sets it)" {
  native_case eks-role-session-name
}

@test "eks-settings-native-replace-top-level: EKS native: native.eks audience, mountPath and tokenExpirationSeconds replace the top-level mountRoot, providers.aws.defaultAudience and tokenExpirationSeconds" {
  native_case eks-settings-native-replace-top-level
}

@test "eks-skip-containers-csv: EKS native: pod skip-containers is one CSV record, not trimmed: 'sidecar' and quoted 'init-first' skipped, ' debug' (leading space) matches nothing; app keeps its AWS_ROLE_ARN and so gets no token file (rawPodSkip)" {
  native_case eks-skip-containers-csv
}

@test "eks-skip-containers-invalid-csv: EKS native: a skip-containers value that is not valid CSV (bare quote) skips no container" {
  native_case eks-skip-containers-invalid-csv
}

@test "eks-skip-label: EKS native: pod label eks.amazonaws.com/skip-pod-identity-webhook (any value, even 'false': the webhook's objectSelector is DoesNotExist) means no injection" {
  native_case eks-skip-label
}

@test "eks-sts-regional-sa-1: EKS native: SA sts-regional-endpoints '1' is true for Go ParseBool; AWS_STS_REGIONAL_ENDPOINTS=regional before AWS_ROLE_ARN" {
  native_case eks-sts-regional-sa-1
}

@test "eks-sts-regional-sa-false-beats-settings: EKS native: SA sts-regional-endpoints 'false' beats native.eks.stsRegionalEndpoints true: no AWS_STS_REGIONAL_ENDPOINTS, region pair still added (rawPodNoSTSAnnotationOverride)" {
  native_case eks-sts-regional-sa-false-beats-settings
}

@test "eks-sts-regional-sa-true-uppercase: EKS native: SA sts-regional-endpoints 'TRUE' (Go ParseBool) adds AWS_STS_REGIONAL_ENDPOINTS=regional first, then the region pair (rawPodNeedsSTS)" {
  native_case eks-sts-regional-sa-true-uppercase
}

@test "eks-sts-regional-sa-yes-falls-back: EKS native: SA sts-regional-endpoints 'yes' is no Go bool, so native.eks.stsRegionalEndpoints (true) decides; the policy warns about the ignored value" {
  native_case eks-sts-regional-sa-yes-falls-back
}

@test "eks-token-expiration-minimum: EKS native: pod token-expiration '0' is raised to 600 (rawPodMinTokenExpiration)" {
  native_case eks-token-expiration-minimum
}

@test "eks-token-expiration-pod-beats-sa: EKS native: pod token-expiration 3600 beats the ServiceAccount's 7200 (rawPodHasTokenExpiration)" {
  native_case eks-token-expiration-pod-beats-sa
}

@test "eks-token-expiration-sa-no-maximum: EKS native: pod token-expiration '1h' does not parse and falls through (warning); the ServiceAccount's 172800 is used, no maximum" {
  native_case eks-token-expiration-sa-no-maximum
}

@test "eks-token-expiration-settings: EKS native: SA token-expiration '12h' does not parse (warning); native.eks.tokenExpirationSeconds 43200 is used" {
  native_case eks-token-expiration-settings
}

@test "eks-token-expiration-settings-below-minimum: EKS native: native.eks.tokenExpirationSeconds 300 is raised to 600, as the webhook raises its --token-expiration flag" {
  native_case eks-token-expiration-settings-below-minimum
}

@test "eks-volume-inserted-first: EKS native: pod without serviceAccountName (ServiceAccount default) and with volumes; aws-iam-token goes first, the mount and env are appended after the user's (rawPodWithVolumes)" {
  native_case eks-volume-inserted-first
}

@test "eks-windows-beta-selector-custom-mount: EKS native: nodeSelector beta.kubernetes.io/os windows with native.eks.mountPath /var/run/secrets/aws/irsa: token file C:\var\run\secrets\aws\irsa\token, mount at the unix path (betaWindowsPodWithoutVolumes)" {
  native_case eks-windows-beta-selector-custom-mount
}

@test "eks-windows-node-selector: EKS native: nodeSelector kubernetes.io/os windows makes AWS_WEB_IDENTITY_TOKEN_FILE C:\var\run\secrets\eks.amazonaws.com\serviceaccount\token; the mount path stays (windowsPodWithoutVolumes)" {
  native_case eks-windows-node-selector
}

# The deliberate differences of SPEC §7.4 that admit the pod say so in a warning.
@test "deliberate differences are explained: proxy 'false', azwi lifetime range, foreign EKS volume, ignored Go bool, left-alone container" {
  scenario azwi-proxy-false-annotation
  has_warning 'cwii: ignored azure.workload.identity/inject-proxy-sidecar="false" on pod (the proxy is injected only for "true"; azwi would inject it for any value)'
  scenario azwi-token-expiration-out-of-range
  has_warning "cwii: az token expiration 1800 is outside azwi's range 3600-86400; 3600 is used (azwi would deny the pod)"
  scenario eks-foreign-volume-replaced
  has_warning "cwii: replaced pod volume 'aws-iam-token': the name is reserved for the policy"
  scenario eks-sts-regional-sa-yes-falls-back
  has_warning 'cwii: ignored eks.amazonaws.com/sts-regional-endpoints="yes" on ServiceAccount apps/reports (expected a Go boolean such as true or 1; the setting stsRegionalEndpoints applies)'
  scenario eks-container-all-groups-untouched
  has_warning "cwii: container 'app' defines its own AWS_ROLE_ARN, AWS_REGION, AWS_STS_REGIONAL_ENDPOINTS; aws left it alone (no mount, no env), as its webhook does"
}

@test "a webhook's layout writes no cwii.dev/injected marker and records its sources" {
  scenario azwi-v16-default
  mutated
  pod '.metadata.annotations["cwii.dev/injected"] == null'
  resp '.auditAnnotations["cwii-az-sources"] == "azwi-use=pod(azure.workload.identity/use) client-id=serviceaccount(azure.workload.identity/client-id) inject=pod(azure.workload.identity/use) audience=native.azwi token-expiration=native.azwi"'
  scenario eks-basic-sa-role-arn
  mutated
  pod '.metadata.annotations["cwii.dev/injected"] == null'
  resp '.auditAnnotations["cwii-aws-sources"] | startswith("eks-role-arn=serviceaccount(eks.amazonaws.com/role-arn) inject=serviceaccount(eks.amazonaws.com/role-arn)")'
}
