"""The curves say so when the model overfits: held-out ELBO well below its best for a while,
while the train ELBO rises."""

from __future__ import annotations

import numpy as np

from explorer.qt.views.elbo_view import ElboView, overfitting_note


def history(train_elbo, heldout_elbo, heldout_every: int = 10):
    steps = np.arange(len(train_elbo), dtype=np.float64)
    train = {"step": steps, "samples": steps * 128, "seconds": steps * 0.1,
             "elbo": np.asarray(train_elbo, np.float64)}
    h_steps = steps[::heldout_every][:len(heldout_elbo)]
    heldout = {"step": h_steps, "samples": h_steps * 128, "seconds": h_steps * 0.1,
               "elbo": np.asarray(heldout_elbo, np.float64)}
    return train, heldout


RISING_TRAIN = np.linspace(-300, -150, 200)


def test_the_folder_of_200_images_case_is_named():
    # held-out: up to -220, then down to -478 (the review's run), train rising throughout
    heldout = [-300, -260, -235, -220, -240, -300, -380, -478]
    train, ho = history(RISING_TRAIN, heldout, heldout_every=25)
    note = overfitting_note(train, ho)
    assert note is not None and note.startswith("Overfitting")
    assert "258.0 nats below its best (-220.0)" in note


def test_no_note_while_the_held_out_elbo_still_improves_or_only_wobbles():
    improving = np.linspace(-300, -200, 20)
    assert overfitting_note(*history(RISING_TRAIN, improving)) is None
    wobbling = [-300, -250, -221, -220, -220.5, -221.2, -220.8, -221.5]  # under the margin
    assert overfitting_note(*history(RISING_TRAIN, wobbling, 25)) is None


def test_no_note_for_a_fresh_drop_or_a_short_history():
    fresh = [-300, -260, -240, -220, -219, -230, -260]  # only two evaluations below the best
    assert overfitting_note(*history(RISING_TRAIN, fresh, 25)) is None
    assert overfitting_note(*history(RISING_TRAIN, [-300, -400])) is None
    assert overfitting_note({}, {}) is None


def test_no_note_when_training_itself_gets_worse():
    falling_train = np.concatenate([np.linspace(-300, -150, 100), np.linspace(-150, -400, 100)])
    heldout = [-300, -250, -220, -200, -180, -200, -260, -320, -380, -420]
    assert overfitting_note(*history(falling_train, heldout, 20)) is None  # diverging, not
    train, ho = history(RISING_TRAIN, heldout, 20)
    assert overfitting_note(train, ho) is not None  # the same held-out curve, train rising


def test_nan_evaluations_are_skipped():
    heldout = [-300, -260, -220, np.nan, -260, -300, -380]
    assert overfitting_note(*history(RISING_TRAIN, heldout, 25)) is not None


def test_the_elbo_view_shows_the_note_and_hides_it_again(qtbot):
    view = ElboView()
    qtbot.addWidget(view)
    view.show()
    train, ho = history(RISING_TRAIN, [-300, -260, -235, -220, -240, -300, -380, -478], 25)
    view.set_history(train, ho)
    assert view.overfit_label.isVisible()
    assert view.overfit_label.text() == overfitting_note(train, ho)
    train, ho = history(RISING_TRAIN, np.linspace(-300, -200, 7), 25)
    view.set_history(train, ho)
    assert not view.overfit_label.isVisible()


def test_the_curves_follow_every_progress_whether_or_not_the_held_out_part_changed(qtbot):
    view = ElboView()
    qtbot.addWidget(view)
    for n_train, heldout in ((50, [-300, -250]), (80, [-300, -250]),  # held-out unchanged
                             (90, [-300, -250, -240]), (10, [-310])):  # a new one; a reset
        train, ho = history(np.linspace(-300, -150, n_train), heldout, 25)
        view.set_history(train, ho)
        np.testing.assert_array_equal(view.raw.getData()[1], train["elbo"])
        np.testing.assert_array_equal(view.heldout.getData()[0], ho[view.x_key])
        np.testing.assert_array_equal(view.heldout.getData()[1], ho["elbo"])
    view.x_combo.setCurrentIndex(view.x_combo.findData("seconds"))  # same points, new x
    np.testing.assert_array_equal(view.heldout.getData()[0], ho["seconds"])
