(function () {
  function parseWithNaN(text) {
    // Python writes NaN (not JSON): chemiscope hides those points
    return JSON.parse(text.replace(/\bNaN\b/g, '"***NaN***"'), function (key, value) {
      return value === "***NaN***" ? NaN : value;
    });
  }
  async function gunzip(base64) {
    const bytes = Uint8Array.from(atob(base64), function (c) {
      return c.charCodeAt(0);
    });
    const gzip = new DecompressionStream("gzip");
    const stream = new Blob([bytes]).stream().pipeThrough(gzip);
    return await new Response(stream).text();
  }
  async function show(root, index) {
    const id = root.id;
    const error = document.getElementById(id + "-error");
    const warning = document.getElementById(id + "-warning");
    error.hidden = true;
    warning.hidden = true;
    root.dataset.status = "loading";
    root.dataset.shown = String(index);
    if (root.chemiscopeViewer) {
      root.chemiscopeViewer.remove();
      root.chemiscopeViewer = null;
    }
    const messages = [];
    try {
      if (typeof Chemiscope === "undefined") {
        throw new Error("the chemiscope viewer script did not load");
      }
      const warnings = new Chemiscope.Warnings();
      warnings.addHandler(function (message) {
        messages.push(String(message));
        warning.textContent = "chemiscope: " + messages.join("; ");
        warning.hidden = false;
        if (root.dataset.status === "ok") {
          root.dataset.status = "warning: " + messages.join(" | ");
        }
      });
      const data = document.getElementById(id + "-data-" + index);
      const dataset = parseWithNaN(await gunzip(data.textContent.trim()));
      const config = {
        map: id + "-map", info: id + "-info", meta: id + "-meta",
        structure: id + "-structure",
      };
      root.chemiscopeViewer = await Chemiscope.DefaultVisualizer.load(
        config, dataset, warnings
      );
      root.dataset.status = messages.length ? "warning: " + messages.join(" | ") : "ok";
    } catch (e) {
      root.dataset.status = "error: " + String(e);
      error.textContent = "The viewer could not show this dataset: " + String(e);
      error.hidden = false;
    }
  }
  document.querySelectorAll(".nc-viewer").forEach(function (root) {
    const select = document.getElementById(root.id + "-select");
    select.addEventListener("change", function () { show(root, select.value); });
    show(root, select.value);
  });
})();
