from kailash_app.cli import main

main()
