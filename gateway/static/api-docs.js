// Swagger UI over this gateway's OpenAPI document. Loaded as a file, not inline, so the page's
// Content-Security-Policy can allow scripts from the gateway only; the validator badge is off
// (it would send the document to validator.swagger.io).
(function () {
  "use strict";

  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    validatorUrl: null,
    deepLinking: true,
  });
})();
