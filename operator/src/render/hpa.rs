//! HorizontalPodAutoscaler (autoscaling/v2) on the Deployment.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::labels::child_meta;
use crate::reconcile::validate::ValidatedMiddleware;

/// CPU target when the CR sets neither target.
pub const DEFAULT_CPU_PERCENT: i32 = 80;

pub fn render(v: &ValidatedMiddleware) -> Option<HorizontalPodAutoscaler> {
    let a = v.autoscaling.as_ref()?;
    let cpu = match (
        a.target_cpu_utilization_percentage,
        a.target_memory_utilization_percentage,
    ) {
        (None, None) => Some(DEFAULT_CPU_PERCENT),
        (cpu, _) => cpu,
    };
    let metrics = [
        ("cpu", cpu),
        ("memory", a.target_memory_utilization_percentage),
    ]
    .into_iter()
    .filter_map(|(name, pct)| pct.map(|p| utilization(name, p)))
    .collect();
    Some(HorizontalPodAutoscaler {
        metadata: child_meta(&v.owner),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: v.owner.name.clone(),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(metrics),
            behavior: None,
        },
        status: None,
    })
}

fn utilization(resource: &str, percent: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testdata::{full, minimal, validated};

    #[test]
    fn off_by_default() {
        let cr = minimal();
        assert!(render(&validated(&cr, None)).is_none());
    }

    #[test]
    fn targets_deployment_with_cpu_and_memory() {
        let cr = full();
        let spec = render(&validated(&cr, None)).unwrap().spec;
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(spec.scale_target_ref.name, "relay");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 6));
        let m = spec.metrics.unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].resource.as_ref().unwrap().target.average_utilization,
            Some(70)
        );
    }

    #[test]
    fn defaults_to_cpu_80() {
        let mut cr = minimal();
        cr.spec.autoscaling.enabled = true;
        let m = render(&validated(&cr, None)).unwrap().spec.metrics.unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].resource.as_ref().unwrap().name, "cpu");
        assert_eq!(
            m[0].resource.as_ref().unwrap().target.average_utilization,
            Some(80)
        );
    }
}
