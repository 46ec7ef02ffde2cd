"""Login limits moved to django-axes (ADR 0020): our LoginThrottle table goes. Its counts are not carried over;
they lasted at most one window (15 minutes by default), and axes counts from its own table from now on."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("omega_web", "0001_login_throttle"),
    ]

    operations = [
        migrations.DeleteModel(name="LoginThrottle"),
    ]
