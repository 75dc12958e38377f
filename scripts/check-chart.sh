#!/usr/bin/env bash
# Checks the Helm chart: its CRDs equal crds/ (which the operator's types
# generate), `helm lint` passes, and every rendering of the chart (defaults,
# watched namespaces, ServiceMonitor on) validates offline against Kubernetes'
# schemas with kubernetes-validate, for the oldest and newest versions we support.
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/skein-operator
tools=$(e2e/k8s/tools.sh)
helm=$tools/helm

diff -u crds/skein.dev.yaml $chart/crds/skein.dev.yaml || {
  echo "check-chart: $chart/crds differs from crds/: cp crds/skein.dev.yaml $chart/crds/" >&2; exit 1; }
diff -q dashboards/skein.json $chart/dashboards/skein.json >/dev/null || {
  echo "check-chart: $chart/dashboards/skein.json differs from dashboards/skein.json" >&2; exit 1; }
for f in $chart/examples/*.yaml; do
  grep -q "^kind: KafkaCluster" "$f" || continue
  "${SKEIN_OPERATOR_BIN:-${CARGO_TARGET_DIR:-target}/release/skein-operator}" render "$f" >/dev/null
done

"$helm" lint --strict "$chart"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$helm" template skein $chart --namespace skein-system --include-crds > "$out/default.yaml"
"$helm" template skein $chart --namespace skein-system --set 'watchNamespaces={team-a,team-b}' \
  --set replicaCount=2 > "$out/namespaced.yaml"
"$helm" template skein $chart --namespace skein-system --set metrics.serviceMonitor.enabled=true > "$out/monitor.yaml"
grep -q "kind: ServiceMonitor" "$out/monitor.yaml"
grep -q "kind: ClusterRole$" "$out/default.yaml"
[ "$(grep -c '^kind: RoleBinding' "$out/namespaced.yaml")" = 3 ]
# ServiceMonitor is the Prometheus Operator's kind: kubernetes-validate has no schema for it.
for v in 1.27.0 1.37.0; do
  .venv/bin/kubernetes-validate --strict --quiet -k "$v" "$out/default.yaml" "$out/namespaced.yaml"
done
echo "check-chart: ok"
