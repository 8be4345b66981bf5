// The dashboard's pure parts: history() read into the chart's series, and its HTML escaping (dead
// letters are untrusted). No Redis, no browser.
const { html, escape, Markup } = require('../../dashboard/html')

test('history() read into the chart\'s series; an answer without them refused', () => {
  const { historySeries } = require('../../dashboard/operator')
  const from = Date.UTC(2026, 11, 3, 8, 58)
  const history = { from, minutes: 3, pushed: [1, 2, 3], published: [0, 1, 0], failed: [0, 0, 0], deadLettered: [0, 0, 1], topics: { t: {} } }
  expect(historySeries(history)).toEqual({ from, minutes: 3, pushed: [1, 2, 3], published: [0, 1, 0], failed: [0, 0, 0], deadLettered: [0, 0, 1] })
  expect(historySeries({ something: 'else' })).toBeNull()
  expect(historySeries({ ...history, from: undefined })).toBeNull()
})

test('every interpolated value is escaped: markup in a payload stays text, in content and in attributes', () => {
  expect(escape(`<script>alert("x")</script> & 'q'`)).toBe('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;')
  expect(escape(42)).toBe('42')
  const payload = '"><img src=x onerror=alert(1)>'
  const page = html`<a title="${payload}">${payload}</a>`
  expect(page).toBeInstanceOf(Markup)
  expect(String(page)).toBe('<a title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</a>')
  // Arrays are joined, each element escaped; null, undefined and false render nothing.
  expect(String(html`<p>${['<b>', html`<i>${'&'}</i>`]}${null}${undefined}${false}</p>`)).toBe('<p>&lt;b&gt;<i>&amp;</i></p>')
  // Only markup html made passes unescaped: a plain object with a text field is text.
  expect(String(html`${{ text: '<b>', toString: () => '<b>' }}`)).toBe('&lt;b&gt;')
})
