"""Forms shipped with the bot: weather (with carry-over) and the consultation intake example."""
