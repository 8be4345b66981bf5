//! Taking work off a queue in batches: a lone item goes out at once, a burst shares one batch.
//! Used by the push batcher (one Lua call per batch) and the JavaScript publisher (one crossing
//! to the JS thread per batch).

/// The next batch from a queue: waits for one item, then takes whatever else is already waiting,
/// up to `max` in all. `None` once every sender is gone. A lone item goes out at once; a burst
/// shares one batch.
pub async fn next_batch<T>(
    receiver: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    max: usize,
) -> Option<Vec<T>> {
    let first = receiver.recv().await?;
    let mut batch = vec![first];
    take_waiting(receiver, &mut batch, max);
    Some(batch)
}

/// Adds to `batch` what is already waiting on the queue, until it holds `max`.
pub fn take_waiting<T>(
    receiver: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
    max: usize,
) {
    while batch.len() < max {
        match receiver.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_take_what_is_waiting_up_to_the_limit() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..5 {
            sender.send(n).unwrap();
        }
        assert_eq!(next_batch(&mut receiver, 3).await, Some(vec![0, 1, 2]));
        assert_eq!(next_batch(&mut receiver, 3).await, Some(vec![3, 4]));
        drop(sender);
        assert_eq!(next_batch(&mut receiver, 3).await, None);
    }
}
