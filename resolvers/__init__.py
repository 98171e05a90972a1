"""Operations of the account domain: one async function per operation, shared by GraphQL and REST."""
