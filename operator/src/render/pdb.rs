//! PodDisruptionBudget: the user's minAvailable/maxUnavailable, else
//! maxUnavailable 1 whenever more than one replica may run.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::RenderInput;
use super::labels::{child_meta, label_selector};

pub fn render(input: &RenderInput<'_>) -> Option<PodDisruptionBudget> {
    let spec = &input.cr.spec;
    let p = &spec.pod_disruption_budget;
    if !p.enabled {
        return None;
    }
    let (min_available, max_unavailable) = match (&p.min_available, &p.max_unavailable) {
        (None, None) if spec.autoscaling.enabled || spec.replicas > 1 => {
            (None, Some(IntOrString::Int(1)))
        }
        // One replica: a budget would block node drains forever.
        (None, None) => return None,
        (min, max) => (min.clone(), max.clone()),
    };
    Some(PodDisruptionBudget {
        metadata: child_meta(input.cr),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(label_selector(input.cr)),
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
    use crate::render::testdata::{full, input, minimal};

    #[test]
    fn none_for_a_single_replica() {
        let cr = minimal();
        assert!(render(&input(&cr, None)).is_none());
    }

    #[test]
    fn max_unavailable_one_when_scaled() {
        let mut cr = minimal();
        cr.spec.replicas = 3;
        let spec = render(&input(&cr, None)).unwrap().spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
    }

    #[test]
    fn user_min_available() {
        let cr = full();
        let spec = render(&input(&cr, None)).unwrap().spec.unwrap();
        assert_eq!(spec.min_available, Some(IntOrString::String("50%".into())));
        assert_eq!(spec.max_unavailable, None);
    }

    #[test]
    fn disabled() {
        let mut cr = full();
        cr.spec.pod_disruption_budget.enabled = false;
        assert!(render(&input(&cr, None)).is_none());
    }
}
