from socflow.cli import app

app(prog_name="socflow")
