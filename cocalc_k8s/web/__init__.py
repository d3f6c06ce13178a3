"""The web hub: routes, pages, the JSON API, authentication and middlewares."""
