"""GraphQL documents the tests send, built the one way every mutation of the schema is shaped:
`name(input: $input)` taking a `<Name>Input!`, answering its typed errors and a payload."""

from __future__ import annotations


def mutation(name: str, payload: str, errors: str = "code message field") -> str:
    """The document of mutation `name` selecting `errors { <errors> }` and then `payload`."""
    input_type = f"{name[0].upper()}{name[1:]}Input"
    return f"""
mutation($input: {input_type}!) {{
  {name}(input: $input) {{
    errors {{ {errors} }}
    {payload}
  }}
}}"""
