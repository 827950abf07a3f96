//! Step 6: the CR's status, computed purely from the applied Deployment and
//! the reconcile outcome. kstatus-compliant: `observedGeneration`, `Ready`,
//! `Progressing`/`Reconciling`, `Degraded`/`Stalled`. A condition keeps its
//! `lastTransitionTime` unless its status flips, so an unchanged world yields
//! an identical status and no write.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{ClaudeMiddleware, ClaudeMiddlewareStatus};

/// A problem to report on the CR (from a reconcile error the user must fix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: String,
    pub message: String,
}

/// Replica counts of the Deployment and whether it is available at the desired count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    pub desired: i32,
    pub replicas: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    pub complete: bool,
}

pub fn rollout(deployment: &Deployment) -> Rollout {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let st = deployment.status.clone().unwrap_or_default();
    let observed =
        st.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
    let replicas = st.replicas.unwrap_or(0);
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    // The Deployment controller has seen the current spec, every replica runs
    // the current template, no old pod is left, and all of them are available.
    let complete = observed && updated == desired && replicas == desired && available >= desired;
    Rollout {
        desired,
        replicas,
        ready,
        updated,
        available,
        complete,
    }
}

pub struct StatusInput<'a> {
    pub cr: &'a ClaudeMiddleware,
    pub deployment: Option<&'a Deployment>,
    pub problem: Option<&'a Problem>,
    pub selector: String,
    pub endpoint: String,
    pub now: Time,
}

pub fn compute(input: StatusInput<'_>) -> ClaudeMiddlewareStatus {
    let old = input.cr.status.clone().unwrap_or_default();
    let generation = input.cr.metadata.generation;
    let r = input.deployment.map(rollout);
    let conditions = conditions(
        judge(input.problem, r.as_ref()),
        &old.conditions,
        generation,
        &input.now,
    );
    let (replicas, ready_replicas, updated_replicas, summary) = match &r {
        Some(r) => (
            r.replicas,
            r.ready,
            r.updated,
            Some(format!("{}/{}", r.ready, r.desired)),
        ),
        // No Deployment read: keep what was last reported.
        None => (
            old.replicas,
            old.ready_replicas,
            old.updated_replicas,
            old.replicas_summary,
        ),
    };
    ClaudeMiddlewareStatus {
        observed_generation: generation,
        conditions,
        replicas,
        ready_replicas,
        updated_replicas,
        replicas_summary: summary,
        selector: Some(input.selector),
        endpoint: Some(input.endpoint),
    }
}

/// One condition's (status, reason, message).
type Verdict = (bool, String, String);

/// The Ready, Progressing and Degraded verdicts: a problem wins, then whether
/// the Deployment exists and has finished rolling out.
fn judge(problem: Option<&Problem>, rollout: Option<&Rollout>) -> [Verdict; 3] {
    let as_expected = || cond(false, "AsExpected", "no problem");
    match (problem, rollout) {
        (Some(p), _) => [
            cond(false, &p.reason, &p.message),
            cond(false, &p.reason, "blocked until the problem is fixed"),
            cond(true, &p.reason, &p.message),
        ],
        (None, None) => [
            cond(
                false,
                "DeploymentMissing",
                "the Deployment does not exist yet",
            ),
            cond(true, "Creating", "creating the Deployment"),
            as_expected(),
        ],
        (None, Some(r)) if r.complete => [
            cond(
                true,
                "Available",
                &format!("{}/{} replicas available", r.available, r.desired),
            ),
            cond(false, "RolloutComplete", "the Deployment is up to date"),
            as_expected(),
        ],
        (None, Some(r)) => {
            let msg = format!(
                "{}/{} replicas available, {} updated",
                r.available, r.desired, r.updated
            );
            [
                cond(false, "RollingOut", &msg),
                cond(true, "RollingOut", &msg),
                as_expected(),
            ]
        }
    }
}

/// The five conditions from the three verdicts. kstatus reads
/// Reconciling/Stalled; Argo CD and humans read Progressing/Degraded. A
/// condition keeps its lastTransitionTime unless its status flips.
fn conditions(
    [ready, progressing, degraded]: [Verdict; 3],
    old: &[Condition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    [
        ("Ready", ready),
        ("Progressing", progressing.clone()),
        ("Reconciling", progressing),
        ("Degraded", degraded.clone()),
        ("Stalled", degraded),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| {
        let status = if status { "True" } else { "False" }.to_string();
        let last_transition_time = old
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            type_: type_.into(),
            status,
            reason,
            message,
            observed_generation: generation,
            last_transition_time,
        }
    })
    .collect()
}

fn cond(status: bool, reason: &str, message: &str) -> Verdict {
    (status, reason.to_string(), message.to_string())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::render::testdata::minimal;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("time"))
    }

    fn deployment(desired: i32, available: i32) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.generation = Some(2);
        d.spec = Some(DeploymentSpec {
            replicas: Some(desired),
            ..Default::default()
        });
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(desired),
            ready_replicas: Some(available),
            available_replicas: Some(available),
            updated_replicas: Some(desired),
            ..Default::default()
        });
        d
    }

    fn status_of(
        cr: &ClaudeMiddleware,
        d: Option<&Deployment>,
        p: Option<&Problem>,
        now: i64,
    ) -> ClaudeMiddlewareStatus {
        compute(StatusInput {
            cr,
            deployment: d,
            problem: p,
            selector: "s".into(),
            endpoint: "e".into(),
            now: t(now),
        })
    }

    fn get<'a>(s: &'a ClaudeMiddlewareStatus, type_: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition")
    }

    #[test]
    fn ready_when_available_and_times_only_move_on_transition() {
        let mut cr = minimal();
        cr.metadata.generation = Some(1);
        let rolling = status_of(&cr, Some(&deployment(2, 1)), None, 100);
        assert_eq!(get(&rolling, "Ready").status, "False");
        assert_eq!(get(&rolling, "Progressing").status, "True");
        assert_eq!(rolling.replicas_summary.as_deref(), Some("1/2"));
        cr.status = Some(rolling.clone());

        // Same world later: identical status (no write).
        assert_eq!(status_of(&cr, Some(&deployment(2, 1)), None, 200), rolling);

        let ready = status_of(&cr, Some(&deployment(2, 2)), None, 300);
        assert_eq!(get(&ready, "Ready").status, "True");
        assert_eq!(get(&ready, "Ready").last_transition_time, t(300));
        assert_eq!(
            get(&ready, "Degraded").last_transition_time,
            t(100),
            "unchanged condition keeps its time"
        );
        assert_eq!(ready.observed_generation, Some(1));
    }

    #[test]
    fn problem_is_degraded_and_stalled() {
        let cr = minimal();
        let p = Problem {
            reason: "SecretMissing".into(),
            message: "Secret ai/x not found".into(),
        };
        let s = status_of(&cr, Some(&deployment(1, 1)), Some(&p), 5);
        assert_eq!(get(&s, "Degraded").status, "True");
        assert_eq!(get(&s, "Degraded").reason, "SecretMissing");
        assert_eq!(get(&s, "Stalled").status, "True");
        assert_eq!(get(&s, "Ready").status, "False");
    }

    #[test]
    fn not_complete_until_observed() {
        let mut d = deployment(1, 1);
        d.metadata.generation = Some(3);
        assert!(!rollout(&d).complete);
    }
}
