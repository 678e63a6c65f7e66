"""The keys alone finish every flow: confirm presses the primary, * and # move the focus."""

from __future__ import annotations

from assistant.messages import ActionChosen, Key, KeyPressed
from assistant.screens import Action, Button, Screen, ScreenModel
from ui.keypad import Focus, KeypadNavigator, Nav, Post, key_for


def model(screen: Screen, *buttons: Button) -> ScreenModel:
    return ScreenModel(screen=screen, buttons=buttons)


IDENTIFIED = model(
    Screen.IDENTIFIED,
    Button(Action.ONE_KEY_PAY, "一键交费 · 现金", primary=True),
    Button(Action.OTHER_METHODS, "其他方式"),
    Button(Action.CANCEL, "取消"),
    Button(Action.REPEAT, "再说一遍"),
    Button(Action.LANGUAGE, "粤语", value="yue"),
)
CASH = model(Screen.CASH, Button(Action.CREDIT_EXCESS, "存入账户"), Button(Action.CANCEL, "取消"))


def test_keyboard_keys_map_to_kiosk_keys() -> None:
    assert key_for(49, "1") is Key.D1
    assert key_for(261) is Key.D5  # numpad 5, the marked key
    assert key_for(13) is Key.ENTER and key_for(271) is Key.ENTER
    assert key_for(8) is Key.CLEAR and key_for(27) is Key.CANCEL
    assert key_for(32, " ") is Key.CONFIRM
    assert key_for(268) is Key.STAR and key_for(51, "#", ("shift",)) is Key.HASH
    assert key_for(9) is Nav.NEXT and key_for(9, None, ("shift",)) is Nav.PREVIOUS
    assert key_for(282) is Key.REPEAT and key_for(283) is Key.HELP
    assert key_for(97, "a") is None


def test_the_big_key_presses_the_primary_button() -> None:
    nav = KeypadNavigator()
    nav.show(IDENTIFIED)
    assert nav.press(Key.CONFIRM) == [Post(ActionChosen(Action.ONE_KEY_PAY, ""))]
    nav.show(CASH)  # no primary: the dialog gets the key itself
    assert nav.press(Key.CONFIRM) == [Post(KeyPressed(Key.CONFIRM))]


def test_hash_and_star_walk_the_buttons_and_enter_presses_the_focused_one() -> None:
    nav = KeypadNavigator()
    nav.show(IDENTIFIED)
    assert nav.press(Key.HASH) == [Focus(0, IDENTIFIED.buttons[0])]
    assert nav.press(Nav.NEXT) == [Focus(1, IDENTIFIED.buttons[1])]
    assert nav.press(Key.ENTER) == [Post(ActionChosen(Action.OTHER_METHODS, ""))]
    # the focus stays where it was: enter again presses the same button again
    assert nav.focus == 1
    assert nav.press(Key.ENTER) == [Post(ActionChosen(Action.OTHER_METHODS, ""))]
    nav.show(IDENTIFIED)  # the same screen redrawn keeps it
    assert nav.focus == 1
    assert nav.press(Key.STAR) == [Focus(0, IDENTIFIED.buttons[0])]
    assert nav.press(Key.STAR) == [Focus(4, IDENTIFIED.buttons[4])]  # backwards wraps to the last
    assert nav.press(Key.ENTER) == [Post(ActionChosen(Action.LANGUAGE, "yue"))]


def test_typing_leaves_the_buttons_so_enter_submits_again() -> None:
    entry = model(
        Screen.ACCOUNT_ENTRY,
        Button(Action.ENTER, "确认", primary=True),
        Button(Action.CLEAR, "删除"),
        Button(Action.CANCEL, "取消"),
    )
    nav = KeypadNavigator()
    nav.show(entry)
    nav.press(Key.HASH)
    nav.press(Key.HASH)
    assert nav.press(Key.D3) == [Post(KeyPressed(Key.D3))]
    assert nav.press(Key.ENTER) == [Post(KeyPressed(Key.ENTER))]


def test_focus_survives_an_update_of_the_same_screen_only() -> None:
    nav = KeypadNavigator()
    nav.show(IDENTIFIED)
    nav.press(Key.HASH)
    nav.show(ScreenModel(screen=Screen.IDENTIFIED, buttons=IDENTIFIED.buttons, title="again"))
    assert nav.focus == 0
    nav.show(CASH)
    assert nav.focus is None


def test_the_big_key_presses_the_button_chosen_with_star_or_hash() -> None:
    """The screen's hint says: choose a button with * or #, then press the confirm key (the
    key the primary button's badge names): the confirm key presses the chosen button."""
    nav = KeypadNavigator()
    nav.show(IDENTIFIED)
    nav.press(Key.HASH)
    nav.press(Key.HASH)
    assert nav.press(Key.CONFIRM) == [Post(ActionChosen(Action.OTHER_METHODS, ""))]
    assert nav.focus == 1  # pressed again, it presses the same button again
    nav.press(Key.STAR)
    nav.press(Key.STAR)
    assert nav.press(Key.CONFIRM) == [Post(ActionChosen(Action.LANGUAGE, "yue"))]
    nav.show(CASH)  # a new screen: no choice made there, the key goes to the dialog
    assert nav.press(Key.CONFIRM) == [Post(KeyPressed(Key.CONFIRM))]
