from debias.cli import app

app(prog_name="debias")
