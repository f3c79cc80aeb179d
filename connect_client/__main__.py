from connect_client.cli import main

main()
