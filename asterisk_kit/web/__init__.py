"""The kit's web app: login, sessions, CSRF, ru/en pages; capabilities plug their pages in (descriptor `pages`)."""
