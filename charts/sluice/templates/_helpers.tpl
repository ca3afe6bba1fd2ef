{{/* Names, labels and the webhook's certificate; every template of the chart uses these. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name prefix: fullnameOverride, or the release name (with the chart name added when
     the release name does not contain it). "sluice" for a release named sluice. */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "sluice.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The injector's name: its Deployment, Service, ServiceAccount, ConfigMap, ClusterRole
     and MutatingWebhookConfiguration ("sluice-control"). */}}
{{- define "sluice.control.name" -}}
{{- printf "%s-control" (include "sluice.fullname" .) -}}
{{- end -}}

{{/* The Secret with the webhook's serving certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "sluice.control.tlsSecret" -}}
{{- printf "%s-tls" (include "sluice.control.name" .) -}}
{{- end -}}

{{/* The host name the API server calls the webhook by, and the certificate's names. */}}
{{- define "sluice.control.host" -}}
{{- printf "%s.%s.svc" (include "sluice.control.name" .) .Release.Namespace -}}
{{- end -}}

{{- define "sluice.control.dnsNames" -}}
{{- $svc := include "sluice.control.name" . -}}
{{- $ns := .Release.Namespace -}}
{{- toJson (list (printf "%s.%s.svc" $svc $ns) $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain)) -}}
{{- end -}}

{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource of the chart. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ include "sluice.chart" . }}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end -}}

{{/* Labels of the injector's resources, and the subset that selects its pods. */}}
{{- define "sluice.control.labels" -}}
{{ include "sluice.labels" . }}
app.kubernetes.io/component: control
{{- end -}}

{{- define "sluice.control.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control
{{- end -}}

{{/* Namespaces whose pods never reach the webhook, as a JSON list. */}}
{{- define "sluice.webhook.excludedNamespaces" -}}
{{- $names := concat (list "kube-system" "kube-public" .Release.Namespace) .Values.webhook.excludeNamespaces -}}
{{- toJson (uniq $names) -}}
{{- end -}}

{{/* The injector config file: .Values.injector.config, with every optional resource value
     the values leave out (or set to null, which Helm drops) written as null, so that the
     injector leaves it unset instead of putting its default back (the injector lays the
     file over its defaults, and null is how its format removes an optional default). */}}
{{- define "sluice.control.config" -}}
{{- $config := deepCopy (default dict .Values.injector.config) -}}
{{- range $container := list "proxy" "init" -}}
{{- $c := get $config $container | default dict -}}
{{- $_ := set $config $container $c -}}
{{- $r := get $c "resources" | default dict -}}
{{- $_ := set $c "resources" $r -}}
{{- range $kind := list "requests" "limits" -}}
{{- $q := get $r $kind | default dict -}}
{{- $_ := set $r $kind $q -}}
{{- range $quantity := list "cpu" "memory" -}}
{{- if not (hasKey $q $quantity) -}}
{{- $_ := set $q $quantity nil -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $discovery := .Values.injector.discovery -}}
{{- if and $discovery.enabled (not (hasKey $config "discovery")) -}}
{{- $_ := set $config "discovery" (dict "address" (printf "%s:%v" (include "sluice.control.host" .) $discovery.port) "caConfigMap" $discovery.caConfigMap) -}}
{{- end -}}
{{- if and (ne .Values.clusterDomain "cluster.local") (not (hasKey $config "clusterDomain")) -}}
{{- $_ := set $config "clusterDomain" .Values.clusterDomain -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The webhook's serving certificate when cert-manager does not issue it: the pair in the
     existing Secret (so upgrades keep the CA), or a new self-signed CA and a certificate it
     signs for the injector's Service. YAML with base64 values: ca, cert, key. */}}
{{- define "sluice.control.selfSignedTLS" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "sluice.control.tlsSecret" .) | default dict -}}
{{- $ca := dig "data" "ca.crt" "" $secret -}}
{{- $cert := dig "data" "tls.crt" "" $secret -}}
{{- $key := dig "data" "tls.key" "" $secret -}}
{{- if and $ca $cert $key -}}
ca: {{ $ca }}
cert: {{ $cert }}
key: {{ $key }}
{{- else -}}
{{- $names := include "sluice.control.dnsNames" . | fromJsonArray -}}
{{- $days := int .Values.tls.validityDays -}}
{{- $newCA := genCA (printf "%s-ca" (include "sluice.control.name" .)) $days -}}
{{- $newCert := genSignedCert (first $names) nil $names $days $newCA -}}
ca: {{ $newCA.Cert | b64enc }}
cert: {{ $newCert.Cert | b64enc }}
key: {{ $newCert.Key | b64enc }}
{{- end -}}
{{- end -}}

{{/* sluice-control --listen and --discovery-listen: injector.listenAddress and a port
     (argument: dict root, port), IPv6 addresses in brackets. */}}
{{- define "sluice.control.listen" -}}
{{- $address := .root.Values.injector.listenAddress | toString | trimPrefix "[" | trimSuffix "]" -}}
{{- if contains ":" $address -}}
{{- printf "[%s]:%v" $address .port -}}
{{- else -}}
{{- printf "%s:%v" $address .port -}}
{{- end -}}
{{- end -}}

{{/* What the two webhooks share. Arguments: root (the chart's context), tls (the
     self-signed pair, empty with cert-manager). */}}
{{- define "sluice.webhook.common" -}}
{{- $root := .root -}}
clientConfig:
  service:
    name: {{ include "sluice.control.name" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: /inject
    port: 443
  {{- if .tls.ca }}
  caBundle: {{ .tls.ca }}
  {{- end }}
rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE]
    resources: [pods]
    scope: Namespaced
admissionReviewVersions: [v1]
sideEffects: None
matchPolicy: Equivalent
failurePolicy: {{ $root.Values.webhook.failurePolicy }}
reinvocationPolicy: {{ $root.Values.webhook.reinvocationPolicy }}
timeoutSeconds: {{ $root.Values.webhook.timeoutSeconds }}
{{- end -}}

{{/* The ingress gateway's name: its Deployment, Service, ServiceAccount and PDB. */}}
{{- define "sluice.gateway.name" -}}
{{- default (printf "%s-gateway" (include "sluice.fullname" .)) .Values.gateway.name -}}
{{- end -}}

{{/* Labels of the gateway's resources and pods: the chart's, and gateway.labels (what
     Gateway selectors match, `istio: ingressgateway` by default). */}}
{{- define "sluice.gateway.labels" -}}
{{ include "sluice.labels" . }}
app.kubernetes.io/component: gateway
{{ toYaml .Values.gateway.labels }}
{{- end -}}

{{- define "sluice.gateway.selectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{ toYaml .Values.gateway.labels }}
{{- end -}}

{{/* gateway.labels as sluice-proxy's --labels (k=v,...). */}}
{{- define "sluice.gateway.labelFlag" -}}
{{- $pairs := list -}}
{{- range $k, $v := .Values.gateway.labels -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
