//! PodDisruptionBudget: the user's minAvailable/maxUnavailable, else
//! maxUnavailable 1 whenever more than one replica may run.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{child_meta, label_selector};
use crate::reconcile::validate::ValidatedMiddleware;

pub fn render(v: &ValidatedMiddleware) -> Option<PodDisruptionBudget> {
    let p = v.pod_disruption_budget.as_ref()?;
    let (min_available, max_unavailable) = match (&p.min_available, &p.max_unavailable) {
        (None, None) if v.autoscaling.is_some() || v.replicas > 1 => {
            (None, Some(IntOrString::Int(1)))
        }
        // One replica: a budget would block node drains forever.
        (None, None) => return None,
        (min, max) => (min.clone(), max.clone()),
    };
    Some(PodDisruptionBudget {
        metadata: child_meta(&v.owner),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(label_selector(&v.owner.name)),
            min_available,
            max_unavailable,
            // Unready pods can always be evicted, so a broken rollout never blocks a drain.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testdata::{full, minimal, validated};

    #[test]
    fn none_for_a_single_replica() {
        let cr = minimal();
        assert!(render(&validated(&cr, None)).is_none());
    }

    #[test]
    fn max_unavailable_one_when_scaled() {
        let mut cr = minimal();
        cr.spec.replicas = 3;
        let spec = render(&validated(&cr, None)).unwrap().spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
    }

    #[test]
    fn user_min_available() {
        let cr = full();
        let spec = render(&validated(&cr, None)).unwrap().spec.unwrap();
        assert_eq!(spec.min_available, Some(IntOrString::String("50%".into())));
        assert_eq!(spec.max_unavailable, None);
    }

    #[test]
    fn disabled() {
        let mut cr = full();
        cr.spec.pod_disruption_budget.enabled = false;
        assert!(render(&validated(&cr, None)).is_none());
    }
}
