"""Shopping: the catalogue, behaviour events, shared posts and friendships (`data`), their validation and
import (`ingest`, `commands`), the ranker (`ranker`, numpy only), the live recommender (`recommender`),
what routes and the mode share (`service`), the shopper's intent (`intent`), and demo data (`demo`,
`movielens`)."""
