// GraphiQL on this gateway: the explorer plugin, and the headers pane open with the one header
// a query needs (an API key from `gateway create-user` replaces <key>). Loaded as a file, not
// inline, so the page's Content-Security-Policy can allow scripts from the gateway only.
(function () {
  "use strict";

  var DEFAULT_QUERY = [
    "# Replace <key> in the Headers pane below with your API key,",
    "# then run this query with Ctrl-Enter or the play button.",
    "{",
    "  viewer {",
    "    id",
    "    email",
    "  }",
    "}",
    "",
  ].join("\n");
  var DEFAULT_HEADERS = JSON.stringify({ Authorization: "Bearer <key>" }, null, 2);

  var fetcher = GraphiQL.createFetcher({
    url: window.location.pathname,
  });

  function GraphiQLWithExplorer() {
    var explorer = React.useMemo(function () {
      return GraphiQLPluginExplorer.explorerPlugin();
    }, []);
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      defaultQuery: DEFAULT_QUERY,
      defaultHeaders: DEFAULT_HEADERS,
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    });
  }

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQLWithExplorer));
})();
