"""The portal's Jinja environment: imports still see every global, including ones added later."""

from __future__ import annotations

from jinja2 import DictLoader

from portal.core.jinja_environment import PortalEnvironment, TemplateGlobals


def _environment() -> PortalEnvironment:
    from flask import Flask

    environment = PortalEnvironment(Flask(__name__))
    environment.loader = DictLoader(
        {
            "macros.html": "{% macro greet() %}{{ greeting }}, {{ name }}{% endmacro %}",
            "page.html": '{% from "macros.html" import greet with context %}{{ greet() }}',
            "plain.html": '{% from "macros.html" import greet %}{{ greet() }}',
            "farewell.html": "{% macro bye() %}{{ farewell }}{% endmacro %}",
            "leaving.html": '{% from "farewell.html" import bye %}{{ bye() }}',
        }
    )
    return environment


def test_template_globals_keys_are_a_set_of_both_layers():
    template_globals = TemplateGlobals({"own": 1}, {"shared": 2, "own": 3})
    assert template_globals.keys() == {"own", "shared"}
    assert template_globals["own"] == 1


def test_an_import_sees_globals_added_after_the_template_was_loaded():
    environment = _environment()
    environment.globals["greeting"] = "Helo"
    page = environment.get_template("page.html")
    plain = environment.get_template("plain.html")
    assert page.render(name="Gwen") == "Helo, Gwen"
    environment.globals["greeting"] = "Shwmae"  # a later change reaches cached templates
    assert page.render(name="Gwen") == "Shwmae, Gwen"
    assert plain.render(name="Gwen") == "Shwmae, "


def test_an_import_sees_the_global_names_as_they_are_now_not_as_first_imported():
    """Jinja reuses an imported template's module only when the importer has no global names
    the imported template lacks, a check made with keys() on every import; keys remembered
    from the first import would reuse it after a name left the environment's globals."""
    environment = _environment()
    environment.globals["farewell"] = "Hwyl"
    assert environment.get_template("leaving.html").render() == "Hwyl"
    del environment.globals["farewell"]
    page = environment.get_template("leaving.html", globals={"farewell": "Da bo"})
    assert page.render() == "Da bo"


def test_globals_passed_to_one_template_reach_what_it_imports():
    environment = _environment()
    page = environment.get_template("page.html", globals={"greeting": "Bore da"})
    assert page.render(name="Gwen") == "Bore da, Gwen"
    assert "greeting" not in environment.globals


def test_the_portal_uses_it(app):
    assert isinstance(app.jinja_env, PortalEnvironment)
