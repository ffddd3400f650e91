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


def test_globals_passed_to_one_template_reach_what_it_imports():
    environment = _environment()
    page = environment.get_template("page.html", globals={"greeting": "Bore da"})
    assert page.render(name="Gwen") == "Bore da, Gwen"
    assert "greeting" not in environment.globals


def test_the_portal_uses_it(app):
    assert isinstance(app.jinja_env, PortalEnvironment)
