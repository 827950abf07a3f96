//! spec.httpRoute and spec.monitoring.serviceMonitor against a real
//! kube-apiserver, in a control plane of their own (the Gateway API and
//! Prometheus Operator CRDs are cluster-wide, and the test starts without
//! them): the missing-CRD condition and Event while the rest reconciles, the
//! HTTPRoute and ServiceMonitor admitted by the real CRDs (schemas and CEL
//! rules) once installed, updates, no writes in steady state, pruning, and
//! deploy/monitoring/ admitted with the PrometheusRule CRD. The operator runs
//! with deploy/'s least-privilege role.

mod operator_support;

use std::time::Duration;

use anyhow::{Context, bail};
use cmw_operator::render::http_route::HTTPRoute;
use cmw_operator::render::service_monitor::ServiceMonitor;
use cmw_tests::controlplane::{
    DEFAULT_TIMEOUT, PrivateControlPlane, TestNamespace, eventually, test_namespace_in,
};
use cmw_tests::third_party_crds;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use operator_support::{
    Operator, apply_cr, condition, cr_api, exists, get, install_crd, kubectl_stdin,
};
use serde_json::json;

const NAME: &str = "relay";

const CR: &str = r#"
apiVersion: middleware.claude-relay.io/v1alpha1
kind: ClaudeMiddleware
metadata: {name: relay, namespace: ai}
spec:
  target: {url: "http://claude-relay:3001"}
  redis: {host: redis}
  httpRoute:
    enabled: true
    parentRefs: [{name: public, namespace: gateways, sectionName: https}]
    hostnames: [claude.example.com]
  monitoring:
    serviceMonitor: {enabled: true, interval: 30s, labels: {release: prom}}
"#;

/// The optional children's CRDs are looked for again every 30 s.
const CRD_PICKUP: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_and_service_monitor_with_and_without_their_crds() -> anyhow::Result<()> {
    let private = PrivateControlPlane::start("gateway")?;
    let (client, ns) = test_namespace_in(private.control_plane, "gateway").await;
    install_crd(&ns).await?;

    refused_at_admission(&ns)?;

    // The operator runs as a ServiceAccount bound to deploy/'s ClusterRole,
    // so the role is shown to be enough for these children too.
    let operator = Operator::start(operator_service_account(&ns).await?, &ns.name);
    apply_cr(&ns, CR)?;

    // Without the CRDs: the rest of the proxy is reconciled, and the CR says
    // what is missing, once as an Event.
    for kind in ["HTTPRouteApplied", "ServiceMonitorApplied"] {
        let c = condition(&client, &ns.name, NAME, kind, "False").await?;
        assert_eq!(c.reason, "CRDNotInstalled", "{kind}: {c:?}");
        assert!(c.message.contains("install"), "{}", c.message);
    }
    assert!(exists::<Deployment>(&client, &ns.name, NAME).await?);
    assert!(exists::<Service>(&client, &ns.name, NAME).await?);
    let cr = cr_api(&client, &ns.name).get(NAME).await?;
    let status = cr.status.context("status")?;
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.status == "False"),
        "a missing optional CRD does not degrade the proxy: {:?}",
        status.conditions
    );
    // A second reconcile (touching the CR) publishes no second Event.
    let reconciles = operator.metrics.reconciles.get();
    touch(&client, &ns.name, "1").await?;
    eventually("a reconcile after the touch", DEFAULT_TIMEOUT, || async {
        if operator.metrics.reconciles.get() > reconciles {
            Ok(())
        } else {
            bail!("not yet")
        }
    })
    .await?;
    let reasons = warning_reasons(&client, &ns.name).await?;
    let mut missing: Vec<&str> = reasons
        .iter()
        .filter(|(r, _)| r.ends_with("CRDNotInstalled"))
        .map(|(r, repeated)| {
            assert!(!repeated, "{r} published again on a later reconcile");
            r.as_str()
        })
        .collect();
    missing.sort();
    assert_eq!(
        missing,
        ["HTTPRouteCRDNotInstalled", "ServiceMonitorCRDNotInstalled"],
        "one Event per missing kind, not one per reconcile: {reasons:?}"
    );

    // The CRDs arrive: the children follow within the recheck interval.
    let mut crds = third_party_crds::gateway_api_standard()?;
    crds.extend(third_party_crds::prometheus_operator(&[
        "servicemonitors",
        "prometheusrules",
    ])?);
    for file in &crds {
        let yaml = std::fs::read_to_string(file)?;
        kubectl_stdin(&ns, &["apply", "--server-side", "-f", "-"], &yaml, false)
            .with_context(|| format!("installing {}", file.display()))?;
    }
    let route: HTTPRoute = eventually("the HTTPRoute", CRD_PICKUP, || async {
        get::<HTTPRoute>(&client, &ns.name, NAME).await
    })
    .await?;
    let rule = &route.spec.rules[0];
    assert_eq!(route.spec.parent_refs[0].name, "public");
    assert_eq!(
        route.spec.parent_refs[0].namespace.as_deref(),
        Some("gateways")
    );
    assert_eq!(
        route.spec.parent_refs[0].section_name.as_deref(),
        Some("https")
    );
    assert_eq!(route.spec.hostnames, ["claude.example.com"]);
    assert_eq!(
        rule.matches[0].path.as_ref().map(|p| p.value.as_str()),
        Some("/")
    );
    assert_eq!(
        (
            rule.backend_refs[0].name.as_str(),
            rule.backend_refs[0].port
        ),
        (NAME, Some(8080))
    );
    let timeouts = rule.timeouts.clone().context("timeouts")?;
    assert_eq!(
        timeouts.request.as_deref(),
        Some("0s"),
        "streams are never cut"
    );
    let monitor: ServiceMonitor = eventually("the ServiceMonitor", CRD_PICKUP, || async {
        get::<ServiceMonitor>(&client, &ns.name, NAME).await
    })
    .await?;
    assert_eq!(monitor.labels()["release"], "prom");
    assert_eq!(monitor.spec.endpoints[0].port, "http");
    assert_eq!(monitor.spec.endpoints[0].interval.as_deref(), Some("30s"));
    let service = get::<Service>(&client, &ns.name, NAME).await?;
    let selected = monitor
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    assert!(
        selected
            .iter()
            .all(|(k, v)| service.labels().get(k) == Some(v)),
        "the ServiceMonitor selects the proxy's Service"
    );
    for kind in ["HTTPRouteApplied", "ServiceMonitorApplied"] {
        condition(&client, &ns.name, NAME, kind, "True").await?;
    }

    // An edit reaches the route; the Gateway API's own rules admit it.
    cr_api(&client, &ns.name)
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"httpRoute": {
                "hostnames": ["a.example.com", "b.example.com"],
                "path": "/v1",
                "timeouts": {"request": "2h", "backendRequest": "90m"},
            }}})),
        )
        .await?;
    eventually(
        "the HTTPRoute to follow the edit",
        DEFAULT_TIMEOUT,
        || async {
            let route = get::<HTTPRoute>(&client, &ns.name, NAME).await?;
            let rule = &route.spec.rules[0];
            let timeouts = rule.timeouts.clone().unwrap_or_default();
            if route.spec.hostnames == ["a.example.com", "b.example.com"]
                && rule.matches[0].path.as_ref().map(|p| p.value.as_str()) == Some("/v1")
                && timeouts.request.as_deref() == Some("2h")
                && timeouts.backend_request.as_deref() == Some("90m")
            {
                Ok(())
            } else {
                bail!("route is {:?}", route.spec)
            }
        },
    )
    .await?;
    condition(&client, &ns.name, NAME, "HTTPRouteApplied", "True").await?;

    // Steady state: reconciles write nothing, neither children nor status.
    let versions = || async {
        let cr = cr_api(&client, &ns.name).get(NAME).await?;
        Ok::<_, anyhow::Error>((
            cr.status.clone(),
            vec![
                get::<HTTPRoute>(&client, &ns.name, NAME)
                    .await?
                    .resource_version(),
                get::<ServiceMonitor>(&client, &ns.name, NAME)
                    .await?
                    .resource_version(),
                get::<Deployment>(&client, &ns.name, NAME)
                    .await?
                    .resource_version(),
                get::<Service>(&client, &ns.name, NAME)
                    .await?
                    .resource_version(),
            ],
            cr.resource_version(),
        ))
    };
    touch(&client, &ns.name, "2").await?;
    let settled = operator.metrics.reconciles.get();
    eventually("a reconcile after the touch", DEFAULT_TIMEOUT, || async {
        if operator.metrics.reconciles.get() > settled {
            Ok(())
        } else {
            bail!("not yet")
        }
    })
    .await?;
    let (status_before, children_before, cr_before) = versions().await?;
    let reconciles = operator.metrics.reconciles.get();
    touch(&client, &ns.name, "3").await?;
    eventually("two more reconciles", DEFAULT_TIMEOUT, || async {
        if operator.metrics.reconciles.get() > reconciles {
            Ok(())
        } else {
            bail!("not yet")
        }
    })
    .await?;
    let (status_after, children_after, cr_after) = versions().await?;
    assert_eq!(
        children_after, children_before,
        "children rewritten in steady state"
    );
    assert_eq!(
        status_after, status_before,
        "status rewritten in steady state"
    );
    assert_ne!(cr_after, cr_before, "the touch itself changed the CR");

    // Switched off: pruned, and their conditions go.
    cr_api(&client, &ns.name)
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "httpRoute": {"enabled": false},
                "monitoring": {"serviceMonitor": {"enabled": false}},
            }})),
        )
        .await?;
    eventually("both pruned", DEFAULT_TIMEOUT, || async {
        let route = exists::<HTTPRoute>(&client, &ns.name, NAME).await?;
        let monitor = exists::<ServiceMonitor>(&client, &ns.name, NAME).await?;
        if route || monitor {
            bail!("HTTPRoute {route}, ServiceMonitor {monitor}");
        }
        Ok(())
    })
    .await?;
    eventually("their conditions removed", DEFAULT_TIMEOUT, || async {
        let cr = cr_api(&client, &ns.name).get(NAME).await?;
        let types: Vec<String> = cr
            .status
            .map(|s| s.conditions.into_iter().map(|c| c.type_).collect())
            .unwrap_or_default();
        if types.iter().any(|t| t.ends_with("Applied")) {
            bail!("conditions {types:?}");
        }
        Ok(())
    })
    .await?;

    // deploy/monitoring/ (the PrometheusRule and the dashboard's ConfigMap)
    // is admitted by the real CRD.
    let cp = ns.control_plane();
    let kustomize = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring");
    let out = cp.kubectl_ok(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "--namespace",
        &ns.name,
        "-k",
        kustomize.to_str().context("path")?,
    ])?;
    assert!(
        out.contains("prometheusrule.monitoring.coreos.com/claude-middleware serverside-applied"),
        "{out}"
    );

    operator.stop().await;
    Ok(())
}

/// A client of a ServiceAccount bound (in the test namespace) to the
/// operator's ClusterRole from deploy/rbac/.
async fn operator_service_account(ns: &TestNamespace) -> anyhow::Result<Client> {
    let cp = ns.control_plane();
    let role = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac/cluster-role.yaml"),
    )?;
    kubectl_stdin(ns, &["apply", "--server-side", "-f", "-"], &role, false)?;
    let account = format!("{}:operator", ns.name);
    cp.kubectl_ok(&["-n", &ns.name, "create", "serviceaccount", "operator"])?;
    cp.kubectl_ok(&[
        "-n",
        &ns.name,
        "create",
        "rolebinding",
        "operator",
        "--clusterrole=claude-middleware-operator",
        &format!("--serviceaccount={account}"),
    ])?;
    cp.service_account_client(&ns.name, "operator").await
}

/// What the CRD's schema refuses at `kubectl apply`.
fn refused_at_admission(ns: &TestNamespace) -> anyhow::Result<()> {
    let base = CR.replace("namespace: ai", &format!("namespace: {}", ns.name));
    for (what, from, to, message) in [
        (
            "no parentRefs",
            "parentRefs: [{name: public, namespace: gateways, sectionName: https}]",
            "parentRefs: []",
            "httpRoute.parentRefs must name at least one Gateway",
        ),
        (
            "a path without /",
            "hostnames: [claude.example.com]",
            "hostnames: [claude.example.com]\n    path: v1",
            "httpRoute.path must start with /",
        ),
        (
            "backendRequest over request",
            "hostnames: [claude.example.com]",
            "hostnames: [claude.example.com]\n    timeouts: {request: 1m, backendRequest: 2m}",
            "backendRequest must not be longer",
        ),
        (
            "a duration Gateway API does not accept",
            "hostnames: [claude.example.com]",
            "hostnames: [claude.example.com]\n    timeouts: {request: 1.5h}",
            "timeouts.request",
        ),
    ] {
        let bad = base.replace(from, to);
        assert_ne!(bad, base, "{what}: the fixture changed");
        match kubectl_stdin(ns, &["apply", "-f", "-"], &bad, true) {
            Ok(out) => bail!("{what}: admitted: {out}"),
            Err(e) => assert!(e.to_string().contains(message), "{what}: {e}"),
        }
    }
    Ok(())
}

/// A metadata-only edit: the controller reconciles, nothing else changes.
async fn touch(client: &Client, ns: &str, value: &str) -> anyhow::Result<()> {
    cr_api(client, ns)
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"test/touch": value}}})),
        )
        .await?;
    Ok(())
}

/// The reasons of the Warning Events on the CR, and whether each was
/// published more than once (an Event series).
async fn warning_reasons(client: &Client, ns: &str) -> anyhow::Result<Vec<(String, bool)>> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = events
        .list(&ListParams::default().fields(&format!("regarding.name={NAME}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| e.reason.map(|r| (r, e.series.is_some())))
        .collect())
}
