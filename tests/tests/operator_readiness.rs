//! The operator's `/readyz`, on the real binary against a real API server:
//! not ready until every watch of the controller has listed, and a standby
//! ready as soon as it knows another replica holds the Lease.
//!
//! The "not yet" is made deterministic, not raced: the control plane is a
//! private one where the CRD is not installed at first, so the leader's
//! ClaudeMiddleware watch cannot list however long one waits.

mod operator_support;

use anyhow::ensure;
use cmw_tests::controlplane::{
    DEFAULT_TIMEOUT, PrivateControlPlane, eventually, test_namespace_in,
};
use operator_support::process::{LEADER, OperatorProcess};
use operator_support::*;

async fn readyz(op: &OperatorProcess) -> anyhow::Result<u16> {
    Ok(op.get("/readyz").await?.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_watches_list_and_a_standby_is_ready_once_it_knows_its_role()
-> anyhow::Result<()> {
    let private = PrivateControlPlane::start("readiness")?;
    let (client, ns) = test_namespace_in(private.control_plane, "op-ready").await;
    let cp = private.control_plane;

    // The leader: it takes the Lease (no CRD needed for that) and starts the
    // controller, whose ClaudeMiddleware watch fails with 404 for now.
    let leader = OperatorProcess::spawn(cp, &ns.name, "ready-a", true)?;
    eventually("ready-a leads", DEFAULT_TIMEOUT, || async {
        ensure!(leader.metric(LEADER).await? == 1.0, "not leading yet");
        Ok(())
    })
    .await?;
    assert_eq!(leader.get("/healthz").await?.0, 200, "alive");
    assert_eq!(
        readyz(&leader).await?,
        503,
        "ready before its watches listed; log:\n{}",
        leader.logs()
    );

    // A standby: ready once it sees the leader's live Lease, though it
    // watches nothing.
    let standby = OperatorProcess::spawn(cp, &ns.name, "ready-b", true)?;
    eventually("the standby ready", DEFAULT_TIMEOUT, || async {
        ensure!(readyz(&standby).await? == 200, "standby not ready yet");
        Ok(())
    })
    .await?;
    assert_eq!(standby.metric(LEADER).await?, 0.0, "ready-b is the standby");
    assert_eq!(readyz(&leader).await?, 503, "the leader still cannot list");
    println!("observed: leader /readyz 503 without the CRD, standby /readyz 200");

    // The CRD appears: the leader's watch lists, and it turns ready.
    install_crd(&ns).await?;
    eventually("the leader ready", DEFAULT_TIMEOUT, || async {
        ensure!(readyz(&leader).await? == 200, "leader not ready yet");
        Ok(())
    })
    .await?;
    // Ready meant able to work: a CR gets its children.
    apply_and_wait(&client, &ns, MINIMAL_CR, &MINIMAL_CHILDREN).await?;
    println!("observed: after the CRD, leader /readyz 200 and a CR reconciled");
    drop((leader, standby));
    drop(ns);
    drop(private);
    Ok(())
}
