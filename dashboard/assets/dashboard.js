// kafka-redis-retry dashboard: the only script (served from the package; the
// Content-Security-Policy allows no other and nothing inline). Everything works without it;
// it only reloads pages that ask for it (<body data-refresh="seconds">), and not while the
// operator is typing into a form or the tab is hidden.
'use strict'
;(function () {
  var seconds = Number(document.body.getAttribute('data-refresh'))
  if (!seconds) return
  var editing = false
  document.addEventListener('input', function () {
    editing = true
  })
  function tick() {
    var active = document.activeElement
    var typing = active && (active.tagName === 'INPUT' || active.tagName === 'SELECT' || active.tagName === 'TEXTAREA')
    if (!editing && !typing && !document.hidden) window.location.reload()
    else window.setTimeout(tick, seconds * 1000)
  }
  window.setTimeout(tick, seconds * 1000)
})()
