//! The conditions that report the optional children on the CR (pure).
//! `HTTPRouteApplied` / `ServiceMonitorApplied`: True once applied, False
//! with reason `CRDNotInstalled` while the cluster lacks the kind, absent
//! when not asked for. Like the other conditions, one keeps its
//! `lastTransitionTime` while its status holds, so nothing changes in steady
//! state.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::optional::{OptionalKind, Outcome};
use crate::crd::ClaudeMiddlewareStatus;

pub const CRD_NOT_INSTALLED: &str = "CRDNotInstalled";
const KINDS: [OptionalKind; 2] = [OptionalKind::HttpRoute, OptionalKind::ServiceMonitor];

/// The message of the False condition and of its Warning Event.
pub fn missing_message(kind: OptionalKind) -> String {
    format!(
        "{} is enabled, but this cluster does not serve {}: install {}; the rest of the proxy is reconciled, and the {} follows once the CRD is there",
        kind.field(),
        kind.api(),
        kind.crds(),
        kind.api().split(' ').next().unwrap_or("object"),
    )
}

/// Appends the optional children's conditions to `status` (built by
/// [`super::status::compute`], which knows only the built-in ones).
pub fn add(
    status: &mut ClaudeMiddlewareStatus,
    old: Option<&ClaudeMiddlewareStatus>,
    outcomes: &[(OptionalKind, Outcome)],
    generation: Option<i64>,
    now: &Time,
) {
    for (kind, outcome) in outcomes {
        let (state, reason, message) = match outcome {
            Outcome::Off => continue,
            Outcome::Applied => ("True", "Applied", format!("{} applied", kind.api())),
            Outcome::CrdMissing => ("False", CRD_NOT_INSTALLED, missing_message(*kind)),
        };
        let last_transition_time = old
            .and_then(|o| {
                o.conditions
                    .iter()
                    .find(|c| c.type_ == kind.condition_type() && c.status == state)
            })
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        status.conditions.push(Condition {
            type_: kind.condition_type().into(),
            status: state.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time,
        });
    }
}

/// The kinds whose CRD has just been found missing (not already reported in
/// `old`): each gets one Warning Event, not one per reconcile.
pub fn newly_missing(
    old: Option<&ClaudeMiddlewareStatus>,
    outcomes: &[(OptionalKind, Outcome)],
) -> Vec<OptionalKind> {
    outcomes
        .iter()
        .filter(|(_, outcome)| *outcome == Outcome::CrdMissing)
        .map(|(kind, _)| *kind)
        .filter(|kind| {
            !old.is_some_and(|o| {
                o.conditions
                    .iter()
                    .any(|c| c.type_ == kind.condition_type() && c.reason == CRD_NOT_INSTALLED)
            })
        })
        .collect()
}

/// Keeps the optional children's conditions as they were, for a status
/// written while a reconcile failed before reaching them.
pub fn carry_over(status: &mut ClaudeMiddlewareStatus, old: Option<&ClaudeMiddlewareStatus>) {
    let kept = old
        .into_iter()
        .flat_map(|o| o.conditions.iter())
        .filter(|c| {
            KINDS
                .iter()
                .any(|kind| kind.condition_type() == c.type_.as_str())
        });
    status.conditions.extend(kept.cloned());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().expect("timestamp"))
    }

    fn status_after(
        old: Option<&ClaudeMiddlewareStatus>,
        outcomes: &[(OptionalKind, Outcome)],
        now: &str,
    ) -> ClaudeMiddlewareStatus {
        let mut status = ClaudeMiddlewareStatus::default();
        add(&mut status, old, outcomes, Some(3), &time(now));
        status
    }

    #[test]
    fn applied_missing_and_off() {
        let status = status_after(
            None,
            &[
                (OptionalKind::HttpRoute, Outcome::CrdMissing),
                (OptionalKind::ServiceMonitor, Outcome::Off),
            ],
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(
            status.conditions.len(),
            1,
            "nothing about what was not asked for"
        );
        let c = &status.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("HTTPRouteApplied", "False", CRD_NOT_INSTALLED)
        );
        assert!(c.message.contains("spec.httpRoute"), "{}", c.message);
        assert!(c.message.contains("Gateway API CRDs"), "{}", c.message);
        assert_eq!(c.observed_generation, Some(3));

        let status = status_after(
            None,
            &[(OptionalKind::ServiceMonitor, Outcome::Applied)],
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(status.conditions[0].type_, "ServiceMonitorApplied");
        assert_eq!(status.conditions[0].status, "True");
    }

    #[test]
    fn transition_time_holds_while_the_status_does() {
        let outcomes = [(OptionalKind::HttpRoute, Outcome::CrdMissing)];
        let first = status_after(None, &outcomes, "2026-01-01T00:00:00Z");
        let again = status_after(Some(&first), &outcomes, "2026-01-01T00:05:00Z");
        assert_eq!(first, again, "an unchanged world gives an identical status");
        let fixed = status_after(
            Some(&again),
            &[(OptionalKind::HttpRoute, Outcome::Applied)],
            "2026-01-01T00:06:00Z",
        );
        assert_eq!(
            fixed.conditions[0].last_transition_time,
            time("2026-01-01T00:06:00Z")
        );
    }

    #[test]
    fn one_event_per_discovery() {
        let outcomes = [
            (OptionalKind::HttpRoute, Outcome::CrdMissing),
            (OptionalKind::ServiceMonitor, Outcome::CrdMissing),
        ];
        assert_eq!(
            newly_missing(None, &outcomes),
            vec![OptionalKind::HttpRoute, OptionalKind::ServiceMonitor]
        );
        let reported = status_after(None, &outcomes[..1], "2026-01-01T00:00:00Z");
        assert_eq!(
            newly_missing(Some(&reported), &outcomes),
            vec![OptionalKind::ServiceMonitor]
        );
    }

    #[test]
    fn carried_over_when_a_reconcile_fails_early() {
        let old = status_after(
            None,
            &[(OptionalKind::HttpRoute, Outcome::Applied)],
            "2026-01-01T00:00:00Z",
        );
        let mut status = ClaudeMiddlewareStatus::default();
        status.conditions.push(Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "SecretMissing".into(),
            message: "m".into(),
            observed_generation: None,
            last_transition_time: time("2026-01-01T00:00:00Z"),
        });
        carry_over(&mut status, Some(&old));
        let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "HTTPRouteApplied"]);
    }
}
