// Starts Swagger UI on /api/v1/docs (api/docs.py). A module file, not an inline script: the page
// is under the app's CSP (script-src 'self'). SwaggerUIBundle is the one global we read: the
// pinned swagger-ui-bundle.js, a classic script that runs before this deferred module, sets it.
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({
  url: root.getAttribute("data-openapi-url"),
  domNode: root,
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
