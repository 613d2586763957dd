// The API reference at /docs: Swagger UI (its files come from a Python package and are served by this
// server, like the page) drawing /openapi.json. A module runs after the deferred bundle has defined
// SwaggerUIBundle. No validator badge: it would load an image from another origin.

window.SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  layout: 'BaseLayout',
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIBundle.SwaggerUIStandalonePreset],
});
