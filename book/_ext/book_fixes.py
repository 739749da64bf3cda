"""Small fixes to the HTML the book's Sphinx extensions produce (loaded from _config.yml).

sphinx-thebe and sphinx-togglebutton register their inline scripts on events that fire after
the HTML builder has copied the registry, so with Sphinx 7.4 every page carried them twice and
the second `const THEBE_JS_URL` threw "Identifier has already been declared" in the console.

The launch buttons (Binder, Colab, JupyterHub) and the clone commands of the pages
(@REPOSITORY_URL@) are built from `repository.url` in _config.yml, the one place the repository
is named. While it is empty the book publishes no launch buttons (the
theme would otherwise fail on the empty URL), rather than buttons that lead nowhere.
"""


def _key(script):  # one copy is registered with filename None, the other with ''
    attrs = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", str(script)) or "",
            tuple(sorted((k, str(v)) for k, v in attrs.items())))


def dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        if _key(script) not in seen:
            seen.add(_key(script))
            unique.append(script)
    scripts[:] = unique  # in place: the builder restores its own list before the next page


def launch_buttons_need_a_repository(app, config):
    options = config.html_theme_options
    if not options.get("repository_url"):
        options.pop("launch_buttons", None)


UNSET_REPOSITORY = "URL-OF-THE-COURSE-REPOSITORY"  # shown until repository.url is set


def repository_in_pages(app, docname, source):
    """@REPOSITORY_URL@ in a page (the clone commands) becomes repository.url of _config.yml."""
    url = app.config.html_theme_options.get("repository_url") or UNSET_REPOSITORY
    source[0] = source[0].replace("@REPOSITORY_URL@", url)


def setup(app):
    app.connect("config-inited", launch_buttons_need_a_repository)
    app.connect("source-read", repository_in_pages)
    # early: the event stops at the first handler that returns a template name
    app.connect("html-page-context", dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
