"""Account-domain gateway: GraphQL and REST over one set of resolvers."""

__version__ = "0.1.0"
