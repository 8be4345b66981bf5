// The dashboard's pure parts: history() read into the chart's series. No Redis, no browser.

test('history() read into the chart\'s series; an answer without them refused', () => {
  const { historySeries } = require('../../dashboard/operator')
  const from = Date.UTC(2026, 11, 3, 8, 58)
  const history = { from, minutes: 3, pushed: [1, 2, 3], published: [0, 1, 0], failed: [0, 0, 0], deadLettered: [0, 0, 1], topics: { t: {} } }
  expect(historySeries(history)).toEqual({ from, minutes: 3, pushed: [1, 2, 3], published: [0, 1, 0], failed: [0, 0, 0], deadLettered: [0, 0, 1] })
  expect(historySeries({ something: 'else' })).toBeNull()
  expect(historySeries({ ...history, from: undefined })).toBeNull()
})
