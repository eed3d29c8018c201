"""Tooltips for the views and the controls of panels that set none themselves."""

from __future__ import annotations

TIPS = (  # (the panel's attribute on Panels, its widget's attribute or None for itself, tip)
    ("latent_view", None, "Each dot is one datapoint's mu_i, each ellipse its sigma_i "
     "(lambda_i = f_phi(x_i)); click empty plane to decode z, click a dot to inspect it"),
    ("controls", None, "Start, pause, step or reset training; the settings above the line "
     "apply at once, those below on Reset"),
    ("elbo_view", None, "The ELBO per datapoint over training (nats, higher is better)"),
    ("image_panel", None, "The decoder's image of the clicked z, and the selected datapoint "
     "beside its reconstruction"),
    ("image_panel", "mean_button", "Show the decoder's mean image E[x|z]"),
    ("image_panel", "sample_button", "Show one random image x ~ p(x|z), a new one each time"),
    ("manifold_view", None, "Decoded images over a grid of z: what the decoder makes of each "
     "place in the plane"),
    ("manifold_view", "mode_box", "Which part of the plane the grid covers"),
    ("dataset_panel", None, "What the model trains on and how x is made from each image"),
    ("encoded_panel", None, "Images you dropped, pasted or encoded: where the encoder puts "
     "them"),
    ("encoded_panel", "remove_button", "Remove the selected encoded images"),
    ("encoded_panel", "clear_button", "Remove every encoded image"),
    ("inspector", None, "The selected point: exact posterior p(z|x), log p(x), ELBO and the "
     "gaps (nats)"),
    ("inspector", "copy_button", "Copy the inspector's numbers to the clipboard"),
    ("colouring", None, "Colour the dots by label or by a per-point number"),
    ("colouring", "combo", "What the dots' colours show (values are computed in the "
     "background for the newest model)"),
    ("colouring", "cancel_button", "Stop computing the per-point values"),
)


def add_view_tips(panels) -> None:
    """Set each tip from TIPS on ``panels`` (an object with the panels as attributes)."""
    for panel_name, name, tip in TIPS:
        panel = getattr(panels, panel_name)
        widget = panel if name is None else getattr(panel, name, None)
        if widget is not None and not widget.toolTip():  # the panel's own tip wins
            widget.setToolTip(tip)
