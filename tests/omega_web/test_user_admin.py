"""The admin's user list shows each account's role, and a role is set with one choice (issue 28)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from omega_web.roles import Role, user_role

pytestmark = pytest.mark.django_db


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # user_role caches the groups on the instance


def test_the_user_list_has_a_role_column(client_for, make_user):
    make_user(Role.ANNOTATOR, "ann")
    make_user(None, "nobody")
    page = client_for(Role.ADMIN).get(reverse("admin:auth_user_changelist")).content.decode()
    assert re.search(r'<th scope="col" class="column-role">.*?role', page, re.S)
    rows = {m.group(1): m.group(2) for m in re.finditer(r'>(\w+)</a></th><td class="field-role">([^<]*)</td>', page)}
    assert rows["ann"] == "annotator" and rows["nobody"] == "no role"
    assert '<td class="field-role">admin</td>' in page  # the admin looking at the list


def test_a_role_is_set_with_one_choice_and_replaces_the_old_one(client_for, make_user):
    viewer = make_user(Role.VIEWER, "vic")
    extra, _ = Group.objects.get_or_create(name="reading-group")  # a group that is not a role is kept
    viewer.groups.add(extra)
    admin = client_for(Role.ADMIN)
    url = reverse("admin:auth_user_change", args=[viewer.pk])
    form = admin.get(url).content.decode()
    assert '<select name="role"' in form and 'name="groups"' not in form
    assert re.search(r'<option value="viewer" selected>', form)
    answer = admin.post(
        url,
        {
            "username": "vic",
            "role": "curator",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    vic = fresh(viewer)
    assert user_role(vic) == Role.CURATOR
    assert set(vic.groups.values_list("name", flat=True)) == {"curator", "reading-group"}


def test_an_action_sets_the_role_of_many_users(client_for, make_user):
    users = [make_user(None, f"new{i}") for i in range(3)]
    answer = client_for(Role.ADMIN).post(
        reverse("admin:auth_user_changelist"),
        {"action": "make_annotator", "_selected_action": [u.pk for u in users]},
        follow=True,
    )
    assert "3 user(s) now have the role annotator." in answer.content.decode()
    assert all(user_role(fresh(u)) == Role.ANNOTATOR for u in users)


def test_a_new_account_gets_its_role_from_the_add_form(client_for):
    answer = client_for(Role.ADMIN).post(
        reverse("admin:auth_user_add"),
        {
            "username": "newcomer",
            "usable_password": "true",
            "password1": "a-long-enough-password-9",
            "password2": "a-long-enough-password-9",
            "role": "researcher",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert user_role(User.objects.get(username="newcomer")) == Role.RESEARCHER
