from pixdex.cli import app

app(prog_name="pixdex")
