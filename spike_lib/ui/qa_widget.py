"""An answer widget: context and question in, the answer out with its span marked in the context.

Taught in: notebooks/09b_span_qa.ipynb
"""

import html


def answer_html(context, start, end, question=None, answer=None) -> str:
    """HTML of the context with characters [start, end) highlighted (escaped, safe to show)."""
    if not 0 <= start <= end <= len(context):
        raise ValueError(f"span [{start}, {end}) is outside the context of {len(context)} "
                         "characters")
    marked = (html.escape(context[:start]) + '<mark style="background:#ffd54f">'
              + html.escape(context[start:end]) + "</mark>" + html.escape(context[end:]))
    head = ""
    if question is not None:
        head += f"<b>Q:</b> {html.escape(question)}<br>"
    if answer is not None:
        head += f"<b>A:</b> {html.escape(answer)}<br>"
    return f'<div style="font-family:sans-serif;line-height:1.5">{head}{marked}</div>'


def ask(model, tok, context, question) -> dict:
    """The span model's answer {answer, start, end, score} and its HTML rendering ("html")."""
    from spike_lib.numpy_impl.span import answer_spans

    res = answer_spans(model, tok, [question], [context])[0]
    return {**res, "html": answer_html(context, res["start"], res["end"], question, res["answer"])}


def answer_widget(model, tok, context, question):
    """ipywidgets: a context box, a question box and an Ask button; the answer appears below
    with its span highlighted. Returns (widget, first answer dict); the widget's output also
    carries the first answer as HTML (spike_lib.ui.static), which pages without a kernel show."""
    import ipywidgets as w

    from spike_lib.ui.static import with_static

    ctx = w.Textarea(value=context, layout=w.Layout(width="100%", height="90px"))
    q = w.Text(value=question, layout=w.Layout(width="100%"))
    out = w.HTML()
    button = w.Button(description="Ask")

    def on_click(_=None):
        try:
            out.value = ask(model, tok, ctx.value, q.value)["html"]
        except ValueError as err:  # an empty context, a question longer than the window
            out.value = f"<b>Error:</b> {html.escape(str(err))}"

    button.on_click(on_click)
    first = ask(model, tok, context, question)
    out.value = first["html"]
    box = w.VBox([w.Label("Context"), ctx, w.Label("Question"), q, button, out])
    return with_static(box, html=first["html"]), first
