// Type-checked by `npm run typecheck`: the error type the methods reject with, whose `code` is the
// `ErrorCode` union (held to crates/engine/src/error.rs by src/types_test.rs), so a `switch` over
// it is checked for exhaustiveness: a code without its case fails the typecheck.
import { KafkaRetry, KafkaRetryError, ErrorCode, RetryEvent } from '../..'

/** Every code handled: `code` is `never` after the last case. */
export function advice(code: ErrorCode): string {
  switch (code) {
    case 'ERR_INVALID_ARG':
      return 'fix the call'
    case 'ERR_REDIS_UNAVAILABLE':
      return 'retry later'
    case 'ERR_KAFKA_PUBLISH':
      return 'check the broker'
    case 'ERR_CLOSED':
      return 'make a new instance'
    case 'ERR_INTERNAL':
      return 'report a bug'
    default: {
      const unhandled: never = code
      return unhandled
    }
  }
}

/** One code left out: the exhaustiveness check catches it (the expected error below). */
export function incomplete(code: ErrorCode): string {
  switch (code) {
    case 'ERR_INVALID_ARG':
    case 'ERR_REDIS_UNAVAILABLE':
    case 'ERR_KAFKA_PUBLISH':
    case 'ERR_CLOSED':
      return code
    default: {
      // @ts-expect-error 'ERR_INTERNAL' is not handled, so `code` is not `never` here
      const unhandled: never = code
      return unhandled
    }
  }
}

// @ts-expect-error not a code the engine raises
export const unknownCode: ErrorCode = 'ERR_NOT_A_CODE'

/** The error a method rejects with, as a `catch` narrows it. */
export function isKafkaRetryError(err: unknown): err is KafkaRetryError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string'
}

export async function main(): Promise<void> {
  const retry = new KafkaRetry({
    onEvent: (event: RetryEvent) => {
      switch (event.type) {
        case 'retry':
          console.log(event.retryCount, event.lateMs)
          break
        case 'deadLetter':
          console.log(event.dlqName)
          break
        case 'deadLetterCap':
          console.log(event.count, event.max)
          break
        case 'breakerOpen':
          console.log(event.topic, event.failures, event.attempts)
          break
        case 'breakerClose':
          console.log(event.topic, event.openMs, event.held, event.byHand)
          break
        case 'error': {
          // An error event's code is a code of the same union.
          const code: ErrorCode = event.code
          console.log(advice(code), event.message)
          break
        }
        default: {
          const unhandled: never = event
          void unhandled
        }
      }
    },
  })
  try {
    await retry.requeueDeadLetters('DEAD_LETTER_QUEUE', {})
  } catch (err) {
    if (isKafkaRetryError(err)) {
      const moved: number | undefined = err.requeued
      console.log(advice(err.code), err.message, moved)
    }
  }
  await retry.close()
}
