"""python manage.py ensure_admin — make sure an admin account exists (used by `make run`)."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from omega_web.roles import Role


class Command(BaseCommand):
    help = (
        "Create the admin account if it is missing. The password comes from OMEGA_ADMIN_PASSWORD, or is generated "
        "and printed once. With OMEGA_ADMIN_PASSWORD set, an existing account gets that password."
    )

    def handle(self, *args, **options):
        username = os.environ.get("OMEGA_ADMIN_USERNAME") or "admin"
        wanted = os.environ.get("OMEGA_ADMIN_PASSWORD", "")
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        admin_group, _ = Group.objects.get_or_create(name=Role.ADMIN)
        if user is None:
            password = wanted or secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username=username, email="", password=password)
            user.groups.add(admin_group)
            if wanted:
                self.stdout.write(
                    self.style.SUCCESS(f"Admin account '{username}' created (password from OMEGA_ADMIN_PASSWORD).")
                )
            else:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Admin account '{username}' created. Password (shown only this once): {password}"
                    )
                )
                self.stdout.write(
                    "Change it after logging in (Log in → /accounts/password/) or with: "
                    f"python manage.py changepassword {username}"
                )
            return
        user.groups.add(admin_group)
        if wanted and not user.check_password(wanted):
            user.set_password(wanted)
            user.save(update_fields=["password"])
            self.stdout.write(f"Admin account '{username}' exists; password set from OMEGA_ADMIN_PASSWORD.")
        else:
            self.stdout.write(f"Admin account '{username}' exists (password unchanged).")
