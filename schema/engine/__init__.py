"""The GraphQL engine: the fast path behind one seam (domain modules never import it).

- plans.py, compiler.py, run.py: query operations compiled into plans and run a level at a
  time (the compiled executor), held to graphql-core's executor by `verify` mode;
- execution.py: graphql-core's execution context with those plans and a leaf-field shortcut;
- prepared.py: parsing within the limits, validation once per text, and prepared operations
  executed without strawberry's extension machinery;
- projection.py, json_sql.py: a connection's page reads the columns its query selects, or
  its nodes as JSON that PostgreSQL writes, from what domain modules declare
  (schema/declare.py);
- internals.py: every private name of Strawberry and graphql-core the engine reads.
"""
