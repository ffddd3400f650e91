// The drawn signature: signature_pad on the canvas, copied into the form as a PNG on submit.
(function () {
  var canvas = document.getElementById("signature");
  var form = document.getElementById("sign-form");
  if (!canvas || !form || typeof SignaturePad === "undefined") {
    return;
  }
  function fit() {
    var ratio = Math.max(window.devicePixelRatio || 1, 1);
    var width = canvas.offsetWidth || 600;
    canvas.width = width * ratio;
    canvas.height = 200 * ratio;
    canvas.getContext("2d").scale(ratio, ratio);
  }
  fit();
  var pad = new SignaturePad(canvas, { backgroundColor: "rgb(255, 255, 255)" });
  document.getElementById("clear-signature").addEventListener("click", function () {
    pad.clear();
  });
  form.addEventListener("submit", function () {
    var drawn = form.querySelector('input[name="method"][value="drawn"]');
    var data = document.getElementById("signature-data");
    data.value = drawn && drawn.checked && !pad.isEmpty() ? pad.toDataURL("image/png") : "";
  });
})();
