//! Baseline for the fire benchmark: send N messages with a plain rdkafka `FutureProducer`
//! (acks=all, the same settings as kafka-retry's internal producer) and wait for every delivery
//! report. Prints one JSON line: {"sent":N,"failed":F,"ms":elapsed}.
//!
//! usage: plain-producer <brokers> <topic> <count> [payload-bytes] [in-flight]
//!
//! `in-flight` bounds how many sends wait for their report at once (default 256, the listener's
//! default batch size would be the fair comparison of a batch-at-a-time loop; 0 = unbounded, the
//! fastest a plain producer can go).
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: plain-producer <brokers> <topic> <count> [payload-bytes] [in-flight]");
        std::process::exit(2);
    }
    let brokers = &args[1];
    let topic = args[2].clone();
    let count: usize = args[3].parse().expect("count");
    let payload_bytes: usize = args.get(4).map_or(60, |s| s.parse().expect("payload-bytes"));
    let in_flight: usize = args.get(5).map_or(0, |s| s.parse().expect("in-flight"));

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "2")
        .create()
        .expect("producer");

    // Warm up: metadata for the topic and the connection, outside the timed part (the listener
    // bench also starts timing with a connected producer after its first message).
    producer
        .send(
            FutureRecord::to(&topic).key("warmup").payload("{}"),
            Duration::from_secs(10),
        )
        .await
        .expect("warm-up send");

    let pad = "x".repeat(payload_bytes.saturating_sub(40));
    let start = Instant::now();
    let mut set = JoinSet::new();
    let mut failed = 0usize;
    for i in 0..count {
        if in_flight > 0 && set.len() >= in_flight {
            if let Some(Ok(false)) = set.join_next().await {
                failed += 1;
            }
        }
        let producer = producer.clone();
        let topic = topic.clone();
        let value = format!("{{\"i\":{i},\"msgId\":\"plain-{i}\",\"p\":\"{pad}\"}}");
        set.spawn(async move {
            let headers = OwnedHeaders::new_with_capacity(4)
                .insert(Header { key: "delay", value: Some("0".as_bytes()) })
                .insert(Header { key: "maxRetry", value: Some("3".as_bytes()) })
                .insert(Header { key: "retryCount", value: Some("1".as_bytes()) })
                .insert(Header { key: "executeAt", value: Some("0".as_bytes()) });
            let key = format!("event-{}", i % 16);
            let record = FutureRecord::to(&topic)
                .key(&key)
                .payload(&value)
                .headers(headers);
            producer.send(record, Duration::from_secs(5)).await.is_ok()
        });
    }
    while let Some(res) = set.join_next().await {
        if !matches!(res, Ok(true)) {
            failed += 1;
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    producer.flush(Duration::from_secs(10)).ok();
    println!("{{\"sent\":{count},\"failed\":{failed},\"ms\":{ms:.1}}}");
}
