//! Operator jobs (`lua/jobs/`).

use super::*;

/// Operator jobs (`lua/jobs/`): a runner's reports keep its job running; a stop asked elsewhere
/// reaches it at its next report; a job whose lease ran out (by Redis's clock) reads as
/// interrupted and is continued under the next run, after which the old run's reports are
/// refused; a done job is not continued.
#[tokio::test]
async fn a_job_is_owned_by_its_run_and_interrupted_when_its_lease_runs_out() {
    use kafka_redis_retry_engine::store::jobs::{self, Finish, JobKeys, Reported};
    let Some(t) = TestRedis::start(
        SUITE,
        "a_job_is_owned_by_its_run_and_interrupted_when_its_lease_runs_out",
    )
    .await
    else {
        return;
    };
    let keys = JobKeys::new(&t.prefix);
    let redis = &t.redis;
    let lease = ms(SHORT_LEASE);
    let spec = r#"{"kind":"requeue","filter":{"since":1765000000123},"ratePerSec":100}"#;
    let id = jobs::start(redis, &keys, spec, ms(LEASE)).await.unwrap();
    let job = jobs::read(redis, &keys, Some(id))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((job.state.as_str(), job.run, job.done), ("running", 1, 0));
    assert_eq!(job.spec["filter"]["since"], 1765000000123u64);

    // Reports renew and count; a stop asked elsewhere is read by the next one.
    let report = |run, done, finish| jobs::report(redis, &keys, id, run, done, lease, finish);
    assert_eq!(report(1, 10, None).await.unwrap(), Reported::Running);
    assert_eq!(jobs::stop(redis, &keys, id).await.unwrap(), Some(true));
    assert_eq!(
        jobs::read(redis, &keys, None).await.unwrap()[0].state,
        "stopping"
    );
    assert_eq!(report(1, 12, None).await.unwrap(), Reported::StopAsked);
    // The runner's last report: accepted (its answer still says a stop was asked).
    assert_eq!(
        report(1, 12, Some((Finish::Stopped, None))).await.unwrap(),
        Reported::StopAsked
    );
    let stopped = jobs::read(redis, &keys, Some(id))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((stopped.state.as_str(), stopped.done), ("stopped", 12));
    assert!(stopped.finished_at.is_some());
    // Finished: its run reports no more.
    assert_eq!(report(1, 13, None).await.unwrap(), Reported::Lost);

    // Continued (run 2), then its runner goes silent: interrupted once the lease is out.
    assert_eq!(
        jobs::resume(redis, &keys, id, lease).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        jobs::resume(redis, &keys, id, lease).await.unwrap(),
        Some(0)
    );
    assert_eq!(report(2, 20, None).await.unwrap(), Reported::Running);
    tokio::time::sleep(SHORT_LEASE * 2).await;
    let silent = jobs::read(redis, &keys, Some(id))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((silent.state.as_str(), silent.done), ("interrupted", 20));
    // Another process takes it over; the silent run, back, learns it lost the job.
    assert_eq!(
        jobs::resume(redis, &keys, id, ms(LEASE)).await.unwrap(),
        Some(3)
    );
    assert_eq!(report(2, 25, None).await.unwrap(), Reported::Lost);
    assert_eq!(
        report(3, 30, Some((Finish::Done, None))).await.unwrap(),
        Reported::Running
    );
    let done = jobs::read(redis, &keys, Some(id))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((done.state.as_str(), done.run, done.done), ("done", 3, 30));
    assert_eq!(done.interruptions, 1);
    assert_eq!(
        jobs::resume(redis, &keys, id, lease).await.unwrap(),
        Some(0)
    );
    assert_eq!(jobs::stop(redis, &keys, id).await.unwrap(), Some(false));
    assert_eq!(jobs::resume(redis, &keys, 999, lease).await.unwrap(), None);
    assert!(jobs::read(redis, &keys, Some(999))
        .await
        .unwrap()
        .is_empty());
}

/// Job records are bounded: beyond the newest `KEPT`, the oldest finished go first, never one
/// running under a live lease.
#[tokio::test]
async fn job_records_keep_the_newest_and_every_running_one() {
    use kafka_redis_retry_engine::store::jobs::{self, Finish, JobKeys, KEPT};
    let Some(t) =
        TestRedis::start(SUITE, "job_records_keep_the_newest_and_every_running_one").await
    else {
        return;
    };
    let keys = JobKeys::new(&t.prefix);
    let redis = &t.redis;
    let running = jobs::start(redis, &keys, "{}", ms(LEASE)).await.unwrap();
    for _ in 0..KEPT + 5 {
        let id = jobs::start(redis, &keys, "{}", ms(LEASE)).await.unwrap();
        jobs::report(
            redis,
            &keys,
            id,
            1,
            1,
            ms(LEASE),
            Some((Finish::Done, None)),
        )
        .await
        .unwrap();
    }
    let kept = jobs::read(redis, &keys, None).await.unwrap();
    assert_eq!(kept.len() as u64, KEPT);
    assert!(kept.iter().any(|job| job.id == running));
    assert_eq!(kept[0].id, running + KEPT + 5);
}
