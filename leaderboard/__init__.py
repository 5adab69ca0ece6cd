"""MME-3DR leaderboard: submissions, verification and a static site. Imports no torch and no renderer."""
